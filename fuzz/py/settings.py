"""Fuzz target: the Python settings reader of the server and the client
(protocol/python/settings.py over SERVER_SETTINGS and CLIENT_SETTINGS) with any environment and
command line, split from the input as fuzz/c/settings.c does: a bad value is a ConfigError with
a message, never another exception; a good one can be described. (The server's DB_PASS_FILE
reading is left out: no fuzzer opens files.)"""

from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports():
    from points_client.generated import settings as client_settings
    from points_client.generated.protocol import CLIENT_SETTINGS, ClientConfig
    from points_server.generated import settings as server_settings
    from points_server.generated.protocol import SERVER_SETTINGS, ServerConfig


def split(data: bytes, count: int) -> tuple[dict[int, str], list[str]]:
    """(setting index -> environment value, argv) from the input, as fuzz/c/settings.c."""
    pieces = [os.fsdecode(p) for p in data.split(b"\0")][:64]
    return {i: v for i, v in enumerate(pieces[:count]) if v}, pieces[count:]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    try:
        if data[0] & 1:
            values, argv = split(data[1:], len(CLIENT_SETTINGS))
            env = {CLIENT_SETTINGS[i].env: v for i, v in values.items()}
            _, client = client_settings.load(CLIENT_SETTINGS, ClientConfig, argv, env)
            if client is not None:
                client_settings.describe(CLIENT_SETTINGS, client)
        else:
            values, argv = split(data[1:], len(SERVER_SETTINGS))
            env = {SERVER_SETTINGS[i].env: v for i, v in values.items()}
            _, server = server_settings.load(SERVER_SETTINGS, ServerConfig, argv, env)
            if server is not None:
                server_settings.describe(SERVER_SETTINGS, server)
    except (client_settings.ConfigError, server_settings.ConfigError) as exc:
        if not str(exc):
            raise AssertionError("a ConfigError without a message") from exc


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
