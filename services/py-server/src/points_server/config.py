"""The server's settings: the generic reader (generated/settings.py) over SERVER_SETTINGS, then
what only the server derives (the password file, the lock name).

Mirror: services/c-server/src/config.c. :func:`load` returns the action the command line asks
for and a :class:`ServerConfig`; a bad setting raises :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from . import SERVICE
from .generated.protocol import SERVER_SETTINGS, SETTING_KINDS, ServerConfig
from .generated.settings import (
    Action,
    ConfigError,
    describe,
    help_lines,
    hint,
    parse_value,
)
from .generated.settings import load as load_settings

__all__ = ["Action", "ConfigError", "ServerConfig", "db_tls_mode", "describe_config", "help_text",
           "load", "user_hint"]

PASS_FILE_MAX = 4096  # bytes read from DB_PASS_FILE at most (as the C server)
_DB_PASS = next(s for s in SERVER_SETTINGS if s.env == "DB_PASS")


def read_pass_file(path: str) -> str:
    """DB_PASS from the file DB_PASS_FILE names: trailing "\\n" or "\\r\\n" stripped."""
    try:
        with open(path, "rb") as f:
            data = f.read(PASS_FILE_MAX)
    except OSError as exc:
        raise ConfigError(f"DB_PASS_FILE: cannot read '{path}': {exc.strerror or exc}") from None
    text = data.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
    # The file's text is a DB_PASS value: the same rules (and the same message) apply.
    try:
        if len(data) == PASS_FILE_MAX:
            raise ConfigError("too long")
        return str(parse_value(_DB_PASS, text))
    except ConfigError:
        expect = SETTING_KINDS["secret"].expect
        raise ConfigError(
            f"DB_PASS_FILE: '{path}' does not hold a valid DB_PASS (expected {expect})"
        ) from None


def load(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[Action, ServerConfig | None]:
    """(action, config); config is None for --help and --version."""
    action, cfg = load_settings(SERVER_SETTINGS, ServerConfig, argv, environ)
    if cfg is None:
        return action, None
    if cfg.db_pass_file:
        cfg = replace(cfg, db_pass=read_pass_file(cfg.db_pass_file))
    if not cfg.lock_name:
        # The default, points:<SERVER_USER>, fits: a row is at most 50 bytes.
        cfg = replace(cfg, lock_name=f"points:{cfg.server_user}")
    _check_db_tls(cfg)
    return action, cfg


VERIFYING = ("verify-ca", "verify-identity")


def _check_db_tls(cfg: ServerConfig) -> None:
    """DB_TLS_MODE and DB_TLS_CA_FILE together: a verifying mode needs the CA, and a CA the
    mode would not use is an error rather than a false sense of verification."""
    mode = cfg.db_tls_mode
    if mode in VERIFYING and not cfg.db_tls_ca_file:
        raise ConfigError(f"DB_TLS_MODE (--db-tls-mode): {mode} needs DB_TLS_CA_FILE")
    if mode not in (*VERIFYING, "auto") and cfg.db_tls_ca_file:
        raise ConfigError("DB_TLS_CA_FILE (--db-tls-ca-file): used only by DB_TLS_MODE "
                          f"verify-ca, verify-identity or auto, not {mode}")


def db_tls_mode(cfg: ServerConfig) -> str:
    """DB_TLS_MODE with auto resolved: verify-identity with DB_TLS_CA_FILE, else preferred."""
    if cfg.db_tls_mode != "auto":
        return cfg.db_tls_mode
    return "verify-identity" if cfg.db_tls_ca_file else "preferred"


def user_hint(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """The SERVER_USER to name in a config_error log line, even when parsing failed."""
    return hint(SERVER_SETTINGS, "SERVER_USER", argv, environ)


def describe_config(cfg: ServerConfig) -> str:
    return "\n".join(describe(SERVER_SETTINGS, cfg))


def help_text() -> str:
    lines = [
        f"usage: {SERVICE} [--setting value | --setting=value]... [--check-config] [--help]",
        "                [--version]",
        "",
        "The points server (Python): answers REQUEST_LATEST_POINTS with its row of",
        "project_db.users and increments that row every UPDATE_INTERVAL seconds.",
        "Every setting is an environment variable; its flag overrides it.",
        "",
        *help_lines(SERVER_SETTINGS),
    ]
    return "\n".join(lines)
