"""Generated from protocol/protocol.toml by `make render`. Do not edit."""

# ruff: noqa: E501

from __future__ import annotations

from typing import Final, NamedTuple

PROTOCOL_VERSION: Final = 1
COMMAND: Final = "REQUEST_LATEST_POINTS"
MAX_LINE_BYTES: Final = 1024
ERROR_PREFIX: Final = "ERROR "
REPLY_FORMAT: Final = "User: {user}, Points: {points}, Last Update: {last_update}\n"


class ErrorSpec(NamedTuple):
    code: str
    message: str
    retryable: bool
    line: bytes


class Setting(NamedTuple):
    env: str
    flag: str
    default: str
    kind: str
    help: str


ERRORS: Final[dict[str, ErrorSpec]] = {
    "unknown-command": ErrorSpec("unknown-command", "expected REQUEST_LATEST_POINTS", False, b"ERROR unknown-command expected REQUEST_LATEST_POINTS\n"),
    "line-too-long": ErrorSpec("line-too-long", "request line exceeds 1024 bytes", False, b"ERROR line-too-long request line exceeds 1024 bytes\n"),
    "idle-timeout": ErrorSpec("idle-timeout", "no complete request before the idle timeout", False, b"ERROR idle-timeout no complete request before the idle timeout\n"),
    "db-unavailable": ErrorSpec("db-unavailable", "database unavailable, try again later", True, b"ERROR db-unavailable database unavailable, try again later\n"),
    "row-missing": ErrorSpec("row-missing", "the server's row does not exist", True, b"ERROR row-missing the server's row does not exist\n"),
    "server-busy": ErrorSpec("server-busy", "too many connections, try again later", True, b"ERROR server-busy too many connections, try again later\n"),
    "shutting-down": ErrorSpec("shutting-down", "server is shutting down", True, b"ERROR shutting-down server is shutting down\n"),
}

CLIENT_SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("TARGET_HOST", "--target-host", "localhost", "host", "server host name or address"),
    Setting("TARGET_PORT", "--target-port", "5001", "port", "server port"),
    Setting("CLIENT_RETRIES", "--client-retries", "10", "count", "attempts before giving up"),
    Setting("CLIENT_RETRY_DELAY", "--client-retry-delay", "0.5", "duration", "seconds before the second attempt; doubles per attempt"),
    Setting("CLIENT_RETRY_MAX_DELAY", "--client-retry-max-delay", "5", "duration", "longest wait between attempts"),
    Setting("CLIENT_TIMEOUT", "--client-timeout", "5", "duration", "seconds allowed to connect, and then to receive the reply"),
)
