"""Configuration: every setting of protocol.SERVER_SETTINGS from the environment, overridden by
``--flag value`` or ``--flag=value`` on the command line, checked and typed.

:func:`load` returns a :class:`Config`, raises :class:`ConfigError` for a bad value and
:class:`InfoRequested` for ``--help`` / ``--version`` (the caller prints and exits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import SERVICE, __version__
from .logs import parse_level
from .protocol import SERVER_SETTINGS, Setting

MAX_ROW_CHARS = 50  # users.user is VARCHAR(50)
MAX_LOCK_CHARS = 64  # MySQL rejects longer GET_LOCK names


class ConfigError(Exception):
    """A setting is missing its value, malformed or out of range."""


class InfoRequested(Exception):
    """--help or --version: ``text`` goes to stdout and the process exits 0."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True, slots=True)
class Config:
    """One field per protocol setting, named like its environment variable in lower case."""

    server_host: str
    server_port: int
    server_user: str
    health_host: str
    health_port: int
    db_host: str
    db_port: int
    db_user: str
    db_pass: str
    db_pass_file: str
    db_name: str
    db_timezone: str
    db_connect_timeout: float
    db_query_timeout: float
    update_interval: float
    lock_name: str
    idle_timeout: float
    request_grace: float
    max_connections: int
    listen_backlog: int
    shutdown_timeout: float
    max_staleness: float
    log_level: str


SETTINGS_BY_FLAG: dict[str, Setting] = {s.flag: s for s in SERVER_SETTINGS}


def field_name(setting: Setting) -> str:
    return setting.env.lower()


def _no_control(text: str) -> bool:
    return all(ord(ch) >= 32 and ord(ch) != 127 for ch in text)


def _int(text: str, low: int, high: int | None, what: str) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise ValueError(f"{text!r} is not {what}") from None
    if value < low or (high is not None and value > high):
        bounds = f"{low}-{high}" if high is not None else f">= {low}"
        raise ValueError(f"{text!r} is out of range ({bounds})")
    return value


def _duration(text: str, allow_zero: bool) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        need = "zero or more" if allow_zero else "more than zero"
        raise ValueError(f"{text!r} is not a valid duration ({need} seconds)")
    return value


def convert(setting: Setting, text: str) -> object:
    """The typed value of ``text`` for ``setting``; ValueError with a readable reason."""
    kind = setting.kind
    if kind == "port":
        return _int(text, 1, 65535, "a port number")
    if kind == "port0":
        return _int(text, 0, 65535, "a port number")
    if kind == "count":
        return _int(text, 1, None, "a whole number")
    if kind == "duration":
        return _duration(text, allow_zero=False)
    if kind == "duration0":
        return _duration(text, allow_zero=True)
    if kind == "level":
        return parse_level(text)
    if kind == "host":
        if not text or any(ch.isspace() for ch in text) or not _no_control(text):
            raise ValueError(f"{text!r} is not a host name or address")
        return text
    if kind == "row":
        if not text or len(text) > MAX_ROW_CHARS or not _no_control(text):
            raise ValueError(f"{text!r} is not a row name (1-{MAX_ROW_CHARS} printable characters)")
        return text
    if kind in ("string", "secret", "path"):
        if not _no_control(text):
            raise ValueError("contains control characters")
        return text
    raise ValueError(f"unknown setting kind {kind!r}")  # a protocol.toml the server predates


def parse_argv(argv: Sequence[str]) -> dict[str, str]:
    """{ENV name: raw value} from the command line; raises InfoRequested / ConfigError."""
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in ("-h", "--help"):
            raise InfoRequested(help_text())
        if arg in ("-V", "--version"):
            raise InfoRequested(f"{SERVICE} {__version__}")
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r} (settings are --name value)")
        flag, eq, value = arg.partition("=")
        setting = SETTINGS_BY_FLAG.get(flag)
        if setting is None:
            raise ConfigError(f"unknown option {flag} (see --help)")
        if not eq:
            if i >= len(argv):
                raise ConfigError(f"option {flag} needs a value")
            value = argv[i]
            i += 1
        values[setting.env] = value
    return values


def raw_values(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """{ENV name: raw text}: the default, replaced by a non-empty environment value, replaced
    by a flag."""
    flags = parse_argv(argv)
    raw: dict[str, str] = {}
    for s in SERVER_SETTINGS:
        env_value = environ.get(s.env, "")
        raw[s.env] = flags.get(s.env, env_value if env_value != "" else s.default)
    return raw


def read_password_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"DB_PASS_FILE: cannot read {path!r}: {reason}") from None
    return text.rstrip("\r\n")


def load(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    raw = raw_values(argv, environ)
    values: dict[str, object] = {}
    for s in SERVER_SETTINGS:
        try:
            values[field_name(s)] = convert(s, raw[s.env])
        except ValueError as exc:
            raise ConfigError(f"{s.env} ({s.flag}): {exc}") from None
    if values["db_pass_file"]:
        values["db_pass"] = read_password_file(str(values["db_pass_file"]))
    if not values["lock_name"]:
        values["lock_name"] = f"points:{values['server_user']}"
    if len(str(values["lock_name"])) > MAX_LOCK_CHARS:
        raise ConfigError(f"LOCK_NAME (--lock-name): longer than {MAX_LOCK_CHARS} characters")
    return Config(**values)  # type: ignore[arg-type]


def row_hint(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """Best guess of SERVER_USER for a config_error log line, even from bad settings."""
    user = environ.get("SERVER_USER") or next(
        s.default for s in SERVER_SETTINGS if s.env == "SERVER_USER"
    )
    for i, arg in enumerate(argv):
        if arg == "--server-user" and i + 1 < len(argv):
            user = argv[i + 1]
        elif arg.startswith("--server-user="):
            user = arg.partition("=")[2]
    return user


def help_text() -> str:
    lines = [
        f"usage: {SERVICE} [--setting value | --setting=value] ...",
        "",
        "Python server of the points mesh: answers REQUEST_LATEST_POINTS with its row of",
        "project_db.users and increments that row every UPDATE_INTERVAL seconds.",
        "Every setting is an environment variable; its flag overrides it.",
        "",
        "settings:",
    ]
    for s in SERVER_SETTINGS:
        default = "(empty)" if s.default == "" else s.default
        if s.env == "LOCK_NAME":
            default = "points:<SERVER_USER>"
        lines.append(f"  {s.flag} / {s.env}  [default: {default}]")
        lines.append(f"      {s.help}")
    lines += [
        "",
        "  -h, --help      show this help and exit",
        "  -V, --version   print the version and exit",
    ]
    return "\n".join(lines)

