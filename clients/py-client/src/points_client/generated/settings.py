"""Settings: every setting of a table, from the environment and the command line, typed.

Copied from protocol/python/settings.py by `make render`. Do not edit this copy.

The one validator of the Python programs (server and client); the C programs' mirror is
protocol/c/pts_settings.c, and both apply the kinds of protocol.toml ([setting_kind.*]) the same
way, with the same messages (tests/conformance/test_settings.py runs all four programs over
one table of cases). Order: the default, replaced by a non-empty environment variable, replaced
by a flag (``--name value`` or ``--name=value``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from .protocol import Setting, SettingKind

T = TypeVar("T")

_INT = re.compile(r"[0-9]+")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
SHOWN_MAX = 200  # bytes of a bad value repeated in a message


class ConfigError(ValueError):
    """A bad setting or command line; the message is for the operator."""


class Action(enum.Enum):
    """What the command line asks for besides the settings."""

    RUN = "run"
    HELP = "help"  # --help, -h
    VERSION = "version"  # --version, -V
    CHECK = "check"  # --check-config: print the settings as read and exit


_ACTIONS = {
    "--help": Action.HELP,
    "-h": Action.HELP,
    "--version": Action.VERSION,
    "-V": Action.VERSION,
    "--check-config": Action.CHECK,
}


def _invalid(setting: Setting, text: str) -> ConfigError:
    kind = setting.kind
    head = f"{setting.env} ({setting.flag}): invalid value"
    if kind.secret:
        return ConfigError(f"{head} (expected {kind.expect})")
    shown = text.encode("utf-8", "surrogateescape")[:SHOWN_MAX].decode("utf-8", "replace")
    return ConfigError(f"{head} '{shown}' (expected {kind.expect})")


def _text(kind: SettingKind, text: str) -> str | None:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # undecodable bytes in the environment (surrogateescape)
        return None
    if kind.brackets and size >= 2 and text[0] == "[" and text[-1] == "]":
        text, size = text[1:-1], size - 2
    if not kind.min_bytes <= size <= kind.max_bytes:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return None
    if (kind.no_space and " " in text) or (kind.no_comma and "," in text):
        return None
    return text


def parse_value(setting: Setting, text: str) -> Any:
    """The typed value of text for setting; ConfigError naming the setting when it is bad."""
    kind = setting.kind
    value: Any = None
    if kind.type == "int":
        digits = text.lstrip("0") or "0"
        # At most 19 significant digits, as a C long holds (and int() of a huge string raises).
        if _INT.fullmatch(text) and len(digits) <= 19:
            number = int(digits)
            value = number if kind.min <= number <= kind.max else None
    elif kind.type == "seconds":
        if _SECONDS.fullmatch(text):
            seconds = float(text)
            low_ok = seconds > kind.min if kind.min_exclusive else seconds >= kind.min
            value = seconds if low_ok and seconds <= kind.max else None
    elif kind.type == "text":
        value = _text(kind, text)
    elif kind.type == "choice":
        name = text.lower()
        name = kind.aliases.get(name, name)
        value = name if name in kind.choices else None
    if value is None:
        raise _invalid(setting, text)
    return value


def parse_argv(table: Sequence[Setting], argv: Sequence[str]) -> tuple[Action, dict[str, str]]:
    """The action and {ENV: text} of the flags in argv (without the program name)."""
    by_flag = {s.flag: s for s in table}
    values: dict[str, str] = {}
    action = Action.RUN
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in _ACTIONS:
            if _ACTIONS[arg] in (Action.HELP, Action.VERSION):
                return _ACTIONS[arg], values
            action = _ACTIONS[arg]
            continue
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument '{arg[:SHOWN_MAX]}' (see --help)")
        flag, eq, value = arg.partition("=")
        setting = by_flag.get(flag)
        if setting is None:
            raise ConfigError(f"unknown option '{flag[:SHOWN_MAX]}' (see --help)")
        if not eq:
            if i >= len(argv):
                raise ConfigError(f"option {flag} needs a value")
            value = argv[i]
            i += 1
        values[setting.env] = value
    return action, values


def raw_text(setting: Setting, flags: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """The text a setting is read from: its flag, else a non-empty variable, else its default."""
    if setting.env in flags:
        return flags[setting.env]
    return environ.get(setting.env) or setting.default


def load(
    table: Sequence[Setting], cls: type[T], argv: Sequence[str], environ: Mapping[str, str]
) -> tuple[Action, T | None]:
    """(action, config): config is None for HELP and VERSION; ConfigError on a bad setting."""
    action, flags = parse_argv(table, argv)
    if action in (Action.HELP, Action.VERSION):
        return action, None
    texts = {s.env: raw_text(s, flags, environ) for s in table}
    values = {s.field: parse_value(s, texts[s.env]) for s in table}
    for s in table:
        if texts[s.env]:
            for env in s.requires:
                if not texts[env]:
                    other = next(o for o in table if o.env == env)
                    raise ConfigError(f"{other.env} ({other.flag}): required with {s.env}")
    return action, cls(**values)


def hint(
    table: Sequence[Setting], env: str, argv: Sequence[str], environ: Mapping[str, str]
) -> str:
    """One setting's text as the program would read it, even when other settings are bad (e.g.
    the row to name in a config_error log line)."""
    setting = next(s for s in table if s.env == env)
    flags: dict[str, str] = {}
    for i, arg in enumerate(argv):
        if arg == setting.flag and i + 1 < len(argv):
            flags[env] = argv[i + 1]
        elif arg.startswith(setting.flag + "="):
            flags[env] = arg.partition("=")[2]
    return raw_text(setting, flags, environ)


def describe(table: Sequence[Setting], config: object) -> list[str]:
    """``ENV=value`` per setting, as read (--check-config); secrets hidden, seconds as %.6g."""
    lines = []
    for s in table:
        value = getattr(config, s.field)
        if s.kind.secret:
            text = "(hidden)" if value else ""
        elif s.kind.type == "seconds":
            text = f"{value:.6g}"
        else:
            text = str(value)
        lines.append(f"{s.env}={text}")
    return lines


def help_lines(table: Sequence[Setting]) -> list[str]:
    """One line per setting for --help: flag, variable, meaning and default."""
    out = []
    for s in table:
        out.append(f"  {s.flag:<26} {s.env:<24} {s.help} (default: \"{s.default}\")")
    out += [
        "",
        "  --check-config             print the settings as read, then exit",
        "  --help                     show this text",
        "  --version                  print the version",
    ]
    return out
