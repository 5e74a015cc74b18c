"""Settings of the Python server (points_server.config): environment, flags, validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from points_server import __version__
from points_server.config import (
    Config,
    ConfigError,
    InfoRequested,
    convert,
    field_name,
    help_text,
    load,
    row_hint,
)
from points_server.protocol import SERVER_SETTINGS


def test_config_has_one_field_per_protocol_setting() -> None:
    assert [f.name for f in dataclasses.fields(Config)] == [field_name(s) for s in SERVER_SETTINGS]


def test_defaults() -> None:
    cfg = load([], {})
    for s in SERVER_SETTINGS:
        if s.env != "LOCK_NAME":
            assert getattr(cfg, field_name(s)) == convert(s, s.default), s.env
    assert cfg.server_user == "python_user"
    assert cfg.server_port == 5001 and isinstance(cfg.server_port, int)
    assert cfg.request_grace == 0.05
    assert cfg.lock_name == "points:python_user"
    assert cfg.log_level == "info"


def test_environment_is_read() -> None:
    cfg = load([], {"SERVER_PORT": "5004", "SERVER_USER": "python_user-akmal",
                    "UPDATE_INTERVAL": "0.5", "LOG_LEVEL": "DEBUG"})
    assert (cfg.server_port, cfg.server_user, cfg.update_interval, cfg.log_level) == (
        5004, "python_user-akmal", 0.5, "debug")
    assert cfg.lock_name == "points:python_user-akmal"


def test_flags_override_environment_in_both_forms() -> None:
    env = {"SERVER_PORT": "5004", "SERVER_USER": "from-env"}
    cfg = load(["--server-port", "6000", "--server-user=from-flag"], env)
    assert (cfg.server_port, cfg.server_user) == (6000, "from-flag")


def test_empty_environment_value_means_default() -> None:
    assert load([], {"SERVER_PORT": ""}).server_port == 5001


def test_explicit_lock_name() -> None:
    assert load(["--lock-name", "custom"], {}).lock_name == "custom"


@pytest.mark.parametrize(
    ("env", "word"),
    [
        ({"SERVER_PORT": "http"}, "SERVER_PORT"),
        ({"SERVER_PORT": "70000"}, "SERVER_PORT"),
        ({"SERVER_PORT": "0"}, "SERVER_PORT"),
        ({"HEALTH_PORT": "-1"}, "HEALTH_PORT"),
        ({"UPDATE_INTERVAL": "-1"}, "UPDATE_INTERVAL"),
        ({"UPDATE_INTERVAL": "nan"}, "UPDATE_INTERVAL"),
        ({"IDLE_TIMEOUT": "0"}, "IDLE_TIMEOUT"),
        ({"REQUEST_GRACE": "soon"}, "REQUEST_GRACE"),
        ({"MAX_CONNECTIONS": "0"}, "MAX_CONNECTIONS"),
        ({"LISTEN_BACKLOG": "1.5"}, "LISTEN_BACKLOG"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"SERVER_USER": "x" * 51}, "SERVER_USER"),
        ({"SERVER_USER": "bad\nrow"}, "SERVER_USER"),
        ({"SERVER_HOST": "two words"}, "SERVER_HOST"),
        ({"LOCK_NAME": "l" * 65}, "LOCK_NAME"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(env: dict[str, str], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        load([], env)


def test_zero_is_allowed_where_the_kind_says_so() -> None:
    cfg = load([], {"HEALTH_PORT": "0", "UPDATE_INTERVAL": "0", "MAX_STALENESS": "0"})
    assert (cfg.health_port, cfg.update_interval, cfg.max_staleness) == (0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["--no-such-flag", "1"], "unknown option"),
        (["--server-port"], "needs a value"),
        (["positional"], "unexpected argument"),
        (["--server-port=abc"], "SERVER_PORT"),
    ],
)
def test_bad_command_lines(argv: list[str], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        load(argv, {})


def test_password_file_wins_over_password(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("from-file\n")
    cfg = load([], {"DB_PASS": "from-env", "DB_PASS_FILE": str(secret)})
    assert cfg.db_pass == "from-file"
    secret.write_text("crlf\r\n")
    assert load(["--db-pass-file", str(secret)], {"DB_PASS": "x"}).db_pass == "crlf"


def test_password_without_file() -> None:
    assert load([], {"DB_PASS": "plain"}).db_pass == "plain"


def test_unreadable_password_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DB_PASS_FILE"):
        load([], {"DB_PASS_FILE": str(tmp_path / "missing")})


def test_help_lists_every_setting() -> None:
    with pytest.raises(InfoRequested) as info:
        load(["--help"], {})
    for s in SERVER_SETTINGS:
        assert s.env in info.value.text and s.flag in info.value.text
    assert info.value.text == help_text()


def test_version() -> None:
    with pytest.raises(InfoRequested) as info:
        load(["--version"], {})
    assert info.value.text == f"python-server {__version__}"


def test_version_matches_the_package_and_the_repository() -> None:
    import tomllib

    here = Path(__file__).resolve()
    root = here.parents[2]
    project = tomllib.loads((root / "services/py-server/pyproject.toml").read_text())
    assert project["project"]["version"] == __version__
    assert (root / "VERSION").read_text().strip() == __version__


def test_row_hint_for_config_errors() -> None:
    assert row_hint([], {}) == "python_user"
    assert row_hint([], {"SERVER_USER": "env-row"}) == "env-row"
    assert row_hint(["--server-user", "flag-row", "--bad"], {"SERVER_USER": "e"}) == "flag-row"
    assert row_hint(["--server-user=eq-row"], {}) == "eq-row"
