"""The client's settings: the generic reader (generated/settings.py) over CLIENT_SETTINGS.

Mirror: the settings part of clients/c-client/client.c (the same reader in C,
protocol/c/pts_settings.c). :func:`load` returns the action the command line asks for and a
:class:`ClientConfig`; a bad setting raises :class:`ConfigError` (exit status 2).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from .generated.protocol import CLIENT_SETTINGS, ClientConfig
from .generated.settings import Action, ConfigError, describe, help_lines
from .generated.settings import load as load_settings

__all__ = ["Action", "ClientConfig", "ConfigError", "backoff_delays", "describe_config",
           "load", "target", "usage"]


def load(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[Action, ClientConfig | None]:
    """(action, config); config is None for --help and --version."""
    return load_settings(CLIENT_SETTINGS, ClientConfig, argv, environ)


def target(cfg: ClientConfig) -> str:
    """host:port for messages ("[::1]:5001" for an IPv6 address)."""
    host = f"[{cfg.target_host}]" if ":" in cfg.target_host else cfg.target_host
    return f"{host}:{cfg.target_port}"


def backoff_delays(cfg: ClientConfig) -> Iterator[float]:
    """The waits between attempts: CLIENT_RETRY_DELAY doubling up to CLIENT_RETRY_MAX_DELAY, one
    fewer than the attempts."""
    delay = min(cfg.client_retry_delay, cfg.client_retry_max_delay)
    for _ in range(cfg.client_retries - 1):
        yield delay
        delay = min(delay * 2, cfg.client_retry_max_delay)


def describe_config(cfg: ClientConfig) -> str:
    return "\n".join(describe(CLIENT_SETTINGS, cfg)) + "\n"


def usage(prog: str) -> str:
    lines = [
        f"usage: {prog} [--setting VALUE | --setting=VALUE]... [--check-config] [--help]",
        "                [--version]",
        "",
        "Ask a points server for its latest points and print the reply line.",
        "Every setting is an environment variable; its flag overrides it.",
        "",
        *help_lines(CLIENT_SETTINGS),
        "",
        "exit status: 0 reply printed, 1 error reply, unexpected answer or retries",
        "exhausted, 2 bad setting",
    ]
    return "\n".join(lines) + "\n"
