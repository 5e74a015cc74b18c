"""Settings read the same way by all four programs: C server, Python server, C client, Python
client.

Every case gives environment variables and flags to the programs of one role and states the
outcome protocol.toml's kinds prescribe: the settings as read (`--check-config` prints them) or
the error message. The C programs run as processes; the Python programs' readers run in this
process (the same code `python -m points_server` / `points_client` calls; a few cases also run
them as processes to cover that wiring). Messages must be identical byte for byte across the
languages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

import pytest

from points_client import settings as client_settings
from points_server import config as server_config
from pointsmesh.procs import C_CLIENT, C_SERVER, SANITIZER_ENV

pytestmark = pytest.mark.timeout(120)

# A fixed row so that the C and Python servers' defaults (c_user / python_user) do not differ.
SERVER_BASE = {"SERVER_USER": "row-1"}
YEAR = "31536000"
TOO_LONG_HOST = "h" * 256

# (role, environment, flags, expected): expected is {ENV: value as printed} for settings that
# must read so, or an error message (str) that must be the whole message in every language.
CASES: list[tuple[str, dict[str, str], list[str], dict[str, str] | str]] = [
    # defaults, and an empty variable counts as unset
    ("server", {}, [], {"SERVER_PORT": "5001", "LOCK_NAME": "points:row-1", "LOG_LEVEL": "info"}),
    ("server", {"SERVER_PORT": ""}, [], {"SERVER_PORT": "5001"}),
    ("client", {"TARGET_PORT": ""}, [], {"TARGET_PORT": "5001", "CLIENT_TIMEOUT": "5"}),
    # int kinds: digits only, bounds
    ("server", {"SERVER_PORT": "0080"}, [], {"SERVER_PORT": "80"}),
    ("server", {"HEALTH_PORT": "0"}, [], {"HEALTH_PORT": "0"}),
    ("server", {"SERVER_PORT": "0"}, [],
     "SERVER_PORT (--server-port): invalid value '0' (expected a port number 1-65535)"),
    ("client", {"TARGET_PORT": "65536"}, [],
     "TARGET_PORT (--target-port): invalid value '65536' (expected a port number 1-65535)"),
    ("client", {"TARGET_PORT": "+5"}, [],
     "TARGET_PORT (--target-port): invalid value '+5' (expected a port number 1-65535)"),
    ("server", {"SERVER_PORT": " 5001"}, [],
     "SERVER_PORT (--server-port): invalid value ' 5001' (expected a port number 1-65535)"),
    ("server", {"MAX_CONNECTIONS": "5_000"}, [],
     "MAX_CONNECTIONS (--max-connections): invalid value '5_000' (expected a whole number "
     "1-10000000)"),
    ("server", {"MAX_CONNECTIONS": "10000000"}, [], {"MAX_CONNECTIONS": "10000000"}),
    ("client", {"CLIENT_RETRIES": "10000001"}, [],
     "CLIENT_RETRIES (--client-retries): invalid value '10000001' (expected a whole number "
     "1-10000000)"),
    ("client", {"CLIENT_RETRIES": "0" * 30 + "7"}, [], {"CLIENT_RETRIES": "7"}),
    ("client", {"CLIENT_RETRIES": "9" * 40}, [],
     f"CLIENT_RETRIES (--client-retries): invalid value '{'9' * 40}' (expected a whole number "
     "1-10000000)"),
    # seconds: a plain decimal
    ("client", {"CLIENT_TIMEOUT": ".25"}, [], {"CLIENT_TIMEOUT": "0.25"}),
    ("client", {"CLIENT_RETRY_DELAY": "5."}, [], {"CLIENT_RETRY_DELAY": "5"}),
    ("server", {"UPDATE_INTERVAL": "0"}, [], {"UPDATE_INTERVAL": "0"}),
    ("server", {"IDLE_TIMEOUT": YEAR}, [], {"IDLE_TIMEOUT": "3.1536e+07"}),
    ("server", {"IDLE_TIMEOUT": "0.0"}, [],
     "IDLE_TIMEOUT (--idle-timeout): invalid value '0.0' (expected a number of seconds > 0 (at "
     "most a year))"),
    ("server", {"IDLE_TIMEOUT": "31536000.5"}, [],
     "IDLE_TIMEOUT (--idle-timeout): invalid value '31536000.5' (expected a number of seconds > "
     "0 (at most a year))"),
    *[
        ("client", {"CLIENT_TIMEOUT": bad}, [],
         f"CLIENT_TIMEOUT (--client-timeout): invalid value '{bad}' (expected a number of seconds "
         "> 0 (at most a year))")
        for bad in ("1e3", "-1", "inf", "nan", "0x10", "1.2.3", ".", "5s")
    ],
    ("server", {"MAX_STALENESS": "." + "0" * 400 + "1"}, [], {"MAX_STALENESS": "0"}),
    # host: brackets unwrapped, no space or control character, at most 255 bytes
    ("client", {"TARGET_HOST": "[::1]"}, [], {"TARGET_HOST": "::1"}),
    ("server", {"SERVER_HOST": "[::]"}, [], {"SERVER_HOST": "::"}),
    ("client", {"TARGET_HOST": "a b"}, [],
     "TARGET_HOST (--target-host): invalid value 'a b' (expected a host name or address)"),
    ("client", {"TARGET_HOST": "[]"}, [],
     "TARGET_HOST (--target-host): invalid value '[]' (expected a host name or address)"),
    ("server", {"DB_HOST": "h" * 255}, [], {"DB_HOST": "h" * 255}),
    ("server", {"DB_HOST": TOO_LONG_HOST}, [],
     f"DB_HOST (--db-host): invalid value '{TOO_LONG_HOST[:200]}' (expected a host name or "
     "address)"),
    ("server", {"DB_HOST": "db\tx"}, [],
     "DB_HOST (--db-host): invalid value 'db\tx' (expected a host name or address)"),
    # row: 1-50 bytes (UTF-8 counted in bytes), no space or comma
    ("server", {"SERVER_USER": "r" * 50}, [], {"SERVER_USER": "r" * 50}),
    ("server", {"SERVER_USER": "é" * 25}, [], {"SERVER_USER": "é" * 25}),
    ("server", {"SERVER_USER": "é" * 26}, [],
     f"SERVER_USER (--server-user): invalid value '{'é' * 26}' (expected a row name of 1-50 "
     "bytes without spaces or commas)"),
    ("server", {"SERVER_USER": "a,b"}, [],
     "SERVER_USER (--server-user): invalid value 'a,b' (expected a row name of 1-50 bytes "
     "without spaces or commas)"),
    ("server", {"SERVER_USER": "a b"}, [],
     "SERVER_USER (--server-user): invalid value 'a b' (expected a row name of 1-50 bytes "
     "without spaces or commas)"),
    # lock: at most 64 bytes
    ("server", {"LOCK_NAME": "l" * 64}, [], {"LOCK_NAME": "l" * 64}),
    ("server", {"LOCK_NAME": "l" * 65}, [],
     f"LOCK_NAME (--lock-name): invalid value '{'l' * 65}' (expected a lock name of at most 64 "
     "bytes)"),
    # string and secret: text without control characters; a secret is never repeated
    ("server", {"DB_NAME": "with space"}, [], {"DB_NAME": "with space"}),
    ("server", {"DB_USER": "bell\x07"}, [],
     "DB_USER (--db-user): invalid value 'bell\x07' (expected at most 255 bytes of text)"),
    ("server", {"DB_PASS": "pw\x7f"}, [],
     "DB_PASS (--db-pass): invalid value (expected at most 255 bytes of text)"),
    ("server", {"DB_PASS": "s3cret"}, [], {"DB_PASS": "(hidden)"}),
    # choice: any case, aliases
    ("server", {"LOG_LEVEL": "DEBUG"}, [], {"LOG_LEVEL": "debug"}),
    ("server", {"LOG_LEVEL": "warning"}, [], {"LOG_LEVEL": "warn"}),
    ("server", {"LOG_LEVEL": "loud"}, [],
     "LOG_LEVEL (--log-level): invalid value 'loud' (expected one of debug, info, warn, error)"),
    # flags: both forms, override the environment, an empty flag value is a value
    ("server", {"SERVER_PORT": "http"}, ["--server-port", "5003"], {"SERVER_PORT": "5003"}),
    ("client", {}, ["--target-port=5004", "--client-retries", "3"],
     {"TARGET_PORT": "5004", "CLIENT_RETRIES": "3"}),
    ("server", {}, ["--server-port="],
     "SERVER_PORT (--server-port): invalid value '' (expected a port number 1-65535)"),
    ("client", {}, ["--no-such-flag", "1"], "unknown option '--no-such-flag' (see --help)"),
    ("server", {}, ["positional"], "unexpected argument 'positional' (see --help)"),
    ("client", {}, ["--target-port"], "option --target-port needs a value"),
    # DB_TLS_MODE: MySQL's --ssl-mode words, any case; the CA file with the modes that use it
    ("server", {}, [], {"DB_TLS_MODE": "auto"}),
    ("server", {"DB_TLS_MODE": "Verify-CA", "DB_TLS_CA_FILE": "/ca.crt"}, [],
     {"DB_TLS_MODE": "verify-ca", "DB_TLS_CA_FILE": "/ca.crt"}),
    ("server", {"DB_TLS_MODE": "required"}, [], {"DB_TLS_MODE": "required"}),
    ("server", {"DB_TLS_MODE": "on"}, [],
     "DB_TLS_MODE (--db-tls-mode): invalid value 'on' (expected one of auto, disabled, "
     "preferred, required, verify-ca, verify-identity)"),
    ("server", {"DB_TLS_MODE": "verify-identity"}, [],
     "DB_TLS_MODE (--db-tls-mode): verify-identity needs DB_TLS_CA_FILE"),
    ("server", {"DB_TLS_CA_FILE": "/ca.crt"}, ["--db-tls-mode", "required"],
     "DB_TLS_CA_FILE (--db-tls-ca-file): used only by DB_TLS_MODE verify-ca, verify-identity or "
     "auto, not required"),
    # the password file
    ("server", {"DB_PASS_FILE": "/nonexistent/secret"}, [],
     "DB_PASS_FILE: cannot read '/nonexistent/secret': No such file or directory"),
    # `requires`: a setting that needs another (a certificate its key), checked after values.
    ("server", {"TLS_CERT_FILE": "/x.crt"}, [],
     "TLS_KEY_FILE (--tls-key-file): required with TLS_CERT_FILE"),
    ("server", {"TLS_KEY_FILE": "/x.key"}, [],
     "TLS_CERT_FILE (--tls-cert-file): required with TLS_KEY_FILE"),
    ("server", {"TLS_CLIENT_CA_FILE": "/ca.crt"}, [],
     "TLS_CERT_FILE (--tls-cert-file): required with TLS_CLIENT_CA_FILE"),
    ("server", {}, ["--tls-cert-file=/x.crt", "--tls-key-file", "/x.key"],
     {"TLS_CERT_FILE": "/x.crt", "TLS_KEY_FILE": "/x.key"}),
    ("client", {"TLS_CLIENT_CERT_FILE": "/c.crt", "TLS_CLIENT_KEY_FILE": "/c.key"}, [],
     "TLS_CA_FILE (--tls-ca-file): required with TLS_CLIENT_CERT_FILE"),
    ("client", {"TLS_SERVER_NAME": "points.example"}, [],
     "TLS_CA_FILE (--tls-ca-file): required with TLS_SERVER_NAME"),
    ("client", {"TLS_CA_FILE": "/ca.crt", "TLS_SERVER_NAME": "[::1]"}, [],
     {"TLS_CA_FILE": "/ca.crt", "TLS_SERVER_NAME": "::1"}),
    ("client", {"TLS_CA_FILE": "/ca.crt", "TLS_SERVER_NAME": "a b"}, [],
     "TLS_SERVER_NAME (--tls-server-name): invalid value 'a b' (expected a host name or address "
     "(or nothing))"),
]


def _c_program(role: str, kind: str = "c") -> str:
    path = (C_SERVER if role == "server" else C_CLIENT)[kind]
    if not path.exists():
        pytest.fail(f"{path} is not built (run `make build`)")
    return str(path)


def run_c(role: str, env: Mapping[str, str | bytes], flags: list[str], kind: str = "c"
          ) -> tuple[int, str, str]:
    """(status, stdout, the message after "bad setting: ") of the C program with --check-config."""
    environ: dict[bytes, bytes] = {
        os.fsencode(k): v if isinstance(v, bytes) else os.fsencode(v) for k, v in env.items()
    }
    environ[b"PATH"] = os.fsencode(os.environ.get("PATH", "/usr/bin:/bin"))
    environ.update({k.encode(): v.encode() for k, v in SANITIZER_ENV.items()})
    res = subprocess.run([_c_program(role, kind), "--check-config", *flags], env=environ,
                         capture_output=True, timeout=10)
    return res.returncode, res.stdout.decode(errors="surrogateescape"), _message(
        res.stderr.decode(errors="surrogateescape"))


def _message(stderr: str) -> str:
    """The setting error in a program's stderr, without the program's own framing."""
    text = stderr.strip()
    if "bad setting: " not in text:
        return text
    text = text.split("bad setting: ", 1)[1]
    for suffix in (" (see c-client --help)", " (see python-client --help)"):
        text = text.removesuffix(suffix)
    return text


def run_python(role: str, env: Mapping[str, str], flags: list[str]) -> tuple[int, str, str]:
    """The same triple from the Python program's reader, in this process."""
    argv = ["--check-config", *flags]
    try:
        if role == "server":
            _, scfg = server_config.load(argv, env)
            assert scfg is not None
            return 0, server_config.describe_config(scfg) + "\n", ""
        _, ccfg = client_settings.load(argv, env)
        assert ccfg is not None
        return 0, client_settings.describe_config(ccfg), ""
    except (server_config.ConfigError, client_settings.ConfigError) as exc:
        return 2, "", str(exc)


def _printed(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


@pytest.mark.parametrize(("role", "env", "flags", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_every_program_reads_a_setting_the_same_way(role, env, flags, expected):
    full_env = {**(SERVER_BASE if role == "server" else {}), **env}
    c_status, c_out, c_err = run_c(role, full_env, flags)
    py_status, py_out, py_err = run_python(role, full_env, flags)
    if isinstance(expected, str):
        assert (c_status, c_err) == (2, expected), c_out
        assert (py_status, py_err) == (2, expected)
    else:
        assert c_status == 0, c_err
        assert py_status == 0, py_err
        c_read, py_read = _printed(c_out), _printed(py_out)
        assert c_read == py_read  # every setting, not only the expected ones
        assert {k: c_read[k] for k in expected} == expected


def test_invalid_utf8_is_refused_alike():
    value = b"caf\xe9"  # Latin-1, not UTF-8
    c_status, _, c_err = run_c("server", {**SERVER_BASE, "DB_NAME": value}, [])
    py_status, _, py_err = run_python("server", {**SERVER_BASE, "DB_NAME": os.fsdecode(value)}, [])
    assert c_status == py_status == 2
    assert c_err.startswith("DB_NAME (--db-name): invalid value 'caf")
    assert c_err.endswith("(expected at most 255 bytes of text)")
    assert py_err.startswith("DB_NAME (--db-name): invalid value 'caf")
    assert py_err.endswith("(expected at most 255 bytes of text)")


def test_the_password_file_is_read_alike(tmp_path):
    good = tmp_path / "pass"
    good.write_bytes(b"s3cret\r\n")
    bad = tmp_path / "bad"
    bad.write_bytes(b"line1\nline2\n")
    env = {**SERVER_BASE, "DB_PASS": "ignored", "DB_PASS_FILE": str(good)}
    c_status, c_out, _ = run_c("server", env, [])
    py_status, py_out, _ = run_python("server", env, [])
    assert c_status == py_status == 0
    assert _printed(c_out) == _printed(py_out)
    assert _printed(c_out)["DB_PASS"] == "(hidden)"
    loaded = server_config.load([], env)[1]
    assert loaded is not None and loaded.db_pass == "s3cret"
    # Too long for a password, and at or beyond the bytes read at most (4096): refused alike,
    # without a read past the C buffer (the ASan build checks).
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * 5000)
    exact = tmp_path / "exact"
    exact.write_bytes(b"x" * 4095 + b"\n")
    for path in (bad, huge, exact):
        env["DB_PASS_FILE"] = str(path)
        want = (f"DB_PASS_FILE: '{path}' does not hold a valid DB_PASS (expected at most 255 "
                "bytes of text)")
        for kind in ("c", "c-asan"):
            assert run_c("server", env, [], kind)[::2] == (2, want), (kind, path.name)
        assert run_python("server", env, [])[::2] == (2, want), path.name


@pytest.mark.parametrize("role", ["server", "client"])
def test_python_programs_print_check_config_and_errors_like_c(role):
    """The wiring of `python -m points_server` / `points_client`: --check-config output, exit
    status 2 and the message on stderr, as the C programs."""
    module = "points_server" if role == "server" else "points_client"
    env = {**os.environ, **SERVER_BASE, "TARGET_HOST": "[::1]", "UPDATE_INTERVAL": "0.5"}
    for key in ("SERVER_PORT", "TARGET_PORT", "LOG_LEVEL", "DB_PASS_FILE"):
        env.pop(key, None)
    py = subprocess.run([sys.executable, "-m", module, "--check-config"], env=env,
                        capture_output=True, text=True, timeout=30)
    c = subprocess.run([_c_program(role), "--check-config"], env=env, capture_output=True,
                       text=True, timeout=10)
    assert (py.returncode, c.returncode) == (0, 0), py.stderr + c.stderr
    assert py.stdout == c.stdout
    bad = subprocess.run([sys.executable, "-m", module, "--check-config", "--log-level=loud"
                          if role == "server" else "--client-timeout=0"],
                         env=env, capture_output=True, text=True, timeout=30)
    cbad = subprocess.run([_c_program(role), "--check-config", "--log-level=loud"
                           if role == "server" else "--client-timeout=0"],
                          env=env, capture_output=True, text=True, timeout=10)
    assert bad.returncode == cbad.returncode == 2
    assert _message(bad.stderr) == _message(cbad.stderr) != ""
