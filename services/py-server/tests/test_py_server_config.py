"""Settings of the Python server (points_server.config): what the server adds to the generic
reader (the password file, the derived lock name, help, version, the row of a config_error
line). The rules of every kind are tested on all four programs alike in
tests/conformance/test_settings.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from points_server import __version__
from points_server.config import (
    Action,
    ConfigError,
    ServerConfig,
    describe_config,
    help_text,
    load,
    user_hint,
)
from points_server.generated.protocol import SERVER_SETTINGS
from pointsmesh import ROOT


def cfg_of(argv: list[str], env: dict[str, str]) -> ServerConfig:
    action, cfg = load(argv, env)
    assert action is Action.RUN and cfg is not None
    return cfg


def test_config_has_one_typed_field_per_protocol_setting() -> None:
    fields = dataclasses.fields(ServerConfig)
    assert [f.name for f in fields] == [s.env.lower() for s in SERVER_SETTINGS]
    types = {"int": "int", "seconds": "float", "text": "str", "choice": "str"}
    assert [f.type for f in fields] == [types[s.kind.type] for s in SERVER_SETTINGS]


def test_defaults() -> None:
    cfg = cfg_of([], {})
    assert cfg.server_user == "python_user"
    assert cfg.server_port == 5001 and isinstance(cfg.server_port, int)
    assert cfg.request_grace == 0.05
    assert cfg.lock_name == "points:python_user"
    assert cfg.log_level == "info"


def test_environment_then_flags() -> None:
    env = {"SERVER_PORT": "5004", "SERVER_USER": "python_user-akmal", "UPDATE_INTERVAL": "0.5",
           "LOG_LEVEL": "DEBUG"}
    cfg = cfg_of([], env)
    assert (cfg.server_port, cfg.server_user, cfg.update_interval, cfg.log_level) == (
        5004, "python_user-akmal", 0.5, "debug")
    assert cfg.lock_name == "points:python_user-akmal"
    cfg = cfg_of(["--server-port", "6000", "--server-user=from-flag"], env)
    assert (cfg.server_port, cfg.server_user) == (6000, "from-flag")


def test_explicit_lock_name() -> None:
    assert cfg_of(["--lock-name", "custom"], {}).lock_name == "custom"


def test_password_file_wins_over_password(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("from-file\n")
    assert cfg_of([], {"DB_PASS": "from-env", "DB_PASS_FILE": str(secret)}).db_pass == "from-file"
    secret.write_text("crlf\r\n")
    assert cfg_of(["--db-pass-file", str(secret)], {"DB_PASS": "x"}).db_pass == "crlf"
    assert cfg_of([], {"DB_PASS": "plain"}).db_pass == "plain"


def test_unreadable_password_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DB_PASS_FILE: cannot read"):
        load([], {"DB_PASS_FILE": str(tmp_path / "missing")})
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(ConfigError, match="does not hold a valid DB_PASS"):
        load([], {"DB_PASS_FILE": str(big)})


def test_check_config_hides_the_password() -> None:
    text = describe_config(cfg_of([], {"DB_PASS": "s3cret"}))
    assert "DB_PASS=(hidden)" in text.splitlines() and "s3cret" not in text


def test_help_lists_every_setting() -> None:
    assert load(["--help"], {}) == (Action.HELP, None)
    text = help_text()
    for s in SERVER_SETTINGS:
        assert s.env in text and s.flag in text


def test_version_flag() -> None:
    assert load(["--version"], {"SERVER_PORT": "bad"}) == (Action.VERSION, None)


def test_version_matches_the_package_and_the_repository() -> None:
    from importlib.metadata import version

    assert version("points-server") == __version__  # the build read VERSION (pyproject.toml)
    assert (ROOT / "VERSION").read_text().strip() == __version__


def test_user_hint_for_config_errors() -> None:
    assert user_hint([], {}) == "python_user"
    assert user_hint([], {"SERVER_USER": "env-row"}) == "env-row"
    assert user_hint(["--server-user", "flag-row", "--bad"], {"SERVER_USER": "e"}) == "flag-row"
    assert user_hint(["--server-user=eq-row"], {}) == "eq-row"
