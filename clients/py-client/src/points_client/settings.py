"""Client settings: environment variables from protocol.toml, overridden by flags.

The accepted values are the same as the C client's: a port is 1-65535 written in digits, a
count (attempts) is a whole number >= 1, a duration is a plain decimal number of seconds > 0
("0.5", "5", ".25"; no sign, exponent, "inf" or "nan").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from .protocol import CLIENT_SETTINGS

HOST_MAX = 255
COUNT_MAX = 1_000_000_000
DURATION_MAX = 1_000_000.0

_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]*\.?[0-9]*")


class ConfigError(ValueError):
    """A bad setting or flag (exit status 2)."""


class HelpRequested(Exception):
    """--help was given."""


class VersionRequested(Exception):
    """--version was given."""


@dataclass(frozen=True)
class ClientSettings:
    host: str = "localhost"
    port: int = 5001
    retries: int = 10
    retry_delay: float = 0.5
    retry_max_delay: float = 5.0
    timeout: float = 5.0

    @property
    def target(self) -> str:
        """host:port for messages ("[::1]:5001" for an IPv6 address)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_count(text: str, maximum: int) -> int | None:
    """Digits only, at most maximum; None if malformed."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None


def parse_duration(text: str) -> float | None:
    """A plain decimal number of seconds, at most DURATION_MAX; None if malformed."""
    if not _DECIMAL.fullmatch(text) or not any(c.isdigit() for c in text):
        return None
    value = float(text)
    return value if value <= DURATION_MAX else None


def _check(env: str, value: str) -> object:
    if env == "TARGET_HOST":
        host = value[1:-1] if len(value) >= 2 and value[0] == "[" and value[-1] == "]" else value
        if not host or len(host) > HOST_MAX or " " in host:
            raise ConfigError(f'{env}="{value}": expected a host name or address')
        return host
    if env == "TARGET_PORT":
        port = parse_count(value, 65535)
        if port is None or port < 1:
            raise ConfigError(f'{env}="{value}": expected a port number 1-65535')
        return port
    if env == "CLIENT_RETRIES":
        count = parse_count(value, COUNT_MAX)
        if count is None or count < 1:
            raise ConfigError(f'{env}="{value}": expected a whole number of attempts >= 1')
        return count
    if env in ("CLIENT_RETRY_DELAY", "CLIENT_RETRY_MAX_DELAY", "CLIENT_TIMEOUT"):
        seconds = parse_duration(value)
        if seconds is None or seconds <= 0:
            raise ConfigError(f'{env}="{value}": expected seconds > 0 (e.g. 0.5)')
        return seconds
    raise ConfigError(f"{env}: setting not supported by this client")


_FIELDS = {
    "TARGET_HOST": "host",
    "TARGET_PORT": "port",
    "CLIENT_RETRIES": "retries",
    "CLIENT_RETRY_DELAY": "retry_delay",
    "CLIENT_RETRY_MAX_DELAY": "retry_max_delay",
    "CLIENT_TIMEOUT": "timeout",
}


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> ClientSettings:
    """Defaults, then the environment, then the flags in argv (without the program name).

    Raises HelpRequested / VersionRequested for --help / --version, ConfigError otherwise.
    """
    values = {s.env: environ.get(s.env, s.default) for s in CLIENT_SETTINGS}
    by_flag = {s.flag: s.env for s in CLIENT_SETTINGS}
    args = iter(argv)
    for arg in args:
        if arg in ("--help", "-h"):
            raise HelpRequested
        if arg == "--version":
            raise VersionRequested
        if not arg.startswith("--"):
            raise ConfigError(f'unexpected argument "{arg}"')
        name, eq, value = arg.partition("=")
        env = by_flag.get(name)
        if env is None:
            raise ConfigError(f'unknown option "{name}"')
        if not eq:
            value = next(args, None)  # type: ignore[assignment]
            if value is None:
                raise ConfigError(f"option {arg} needs a value")
        values[env] = value
    checked = {s.env: _check(s.env, values[s.env]) for s in CLIENT_SETTINGS}
    return ClientSettings(**{_FIELDS[env]: value for env, value in checked.items()})


def backoff_delays(settings: ClientSettings) -> Iterator[float]:
    """The waits between attempts: retry_delay doubling up to retry_max_delay, one fewer than
    the attempts."""
    delay = min(settings.retry_delay, settings.retry_max_delay)
    for _ in range(settings.retries - 1):
        yield delay
        delay = min(delay * 2, settings.retry_max_delay)


def usage(prog: str) -> str:
    lines = [
        f"usage: {prog} [--<setting> VALUE | --<setting>=VALUE]... [--help] [--version]",
        "",
        "Ask a points server for its latest points and print the reply line.",
        "Each setting is an environment variable; its flag overrides it.",
        "",
    ]
    for s in CLIENT_SETTINGS:
        default = s.default or '""'
        lines.append(f"  {s.env:<24} {s.flag:<26} {s.help} (default: {default})")
    lines += [
        "",
        "exit status: 0 reply printed, 1 error reply, unexpected answer or retries",
        "exhausted, 2 bad setting",
    ]
    return "\n".join(lines) + "\n"
