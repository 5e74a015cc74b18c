"""Helpers of the container tests: settings, commands, the Compose stack wrapper."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pointsmesh import ROOT as REPO
from pointsmesh.spec import load_protocol, load_roster, reply_regex, servers

CI_DOCKER = REPO / "ci" / "docker"
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_TLS_FILE = REPO / "docker-compose.tls.yml"
REPORT = REPO / "out" / "containers-report.json"

UPDATE_INTERVAL = 2
IMAGE_PREFIX = "pointsmesh"
IMAGE_TAG = "test"
IMAGES = ("c-server", "python-server", "c-client", "python-client")
SIZE_LIMIT_MB = {"c-server": 100, "c-client": 100, "python-server": 200, "python-client": 200}
PROJECT_PREFIX = "pmtest-"

PREPARE_TIMEOUT = 3600  # a cold run builds Compose from source on 2 shared cores
BUILD_TIMEOUT = 1800
UP_TIMEOUT = 300
TEST_TIMEOUT = 300

PROTOCOL = load_protocol()
ROSTER = load_roster()
SERVERS = servers(ROSTER)
CLIENTS = [s.client for s in SERVERS]
REPLY_RE = re.compile(reply_regex(PROTOCOL.reply_format))
assert REPLY_RE.fullmatch(PROTOCOL.reply("u", 1, "2026-01-01 00:00:00"))

# Variables docker-compose.yml reads: never inherited from the caller's environment.
COMPOSE_VARS = {
    line.split("=", 1)[0]
    for line in (REPO / ".env.example").read_text().splitlines()
    if re.match(r"^[A-Z_]+=", line)
}

MEASURE: dict[str, Any] = {}


def run(
    cmd: list[str],
    *,
    timeout: float = 120,
    check: bool = True,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=input,
        check=False,
        cwd=REPO,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def docker_inspect(ref: str, kind: str = "container") -> dict[str, Any]:
    return json.loads(run(["docker", kind, "inspect", ref]).stdout)[0]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in COMPOSE_VARS and not k.startswith("COMPOSE_")
    }
    env.update(extra)
    return env


def parse_reply(text: str) -> re.Match[str]:
    m = REPLY_RE.fullmatch(text)
    assert m, f"not a reply line: {text!r}"
    return m


@dataclass
class Stack:
    """One Compose project of docker-compose.yml (plus the test override) and helpers."""

    project: str
    env_file: Path
    override: Path
    env: dict[str, str]
    passwords: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)
    extra_files: tuple[Path, ...] = ()  # more -f files after the test override (TLS)

    def compose(
        self, *args: str, timeout: float = 180, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["docker", "compose", "-p", self.project, "--env-file", str(self.env_file)]
        cmd += ["-f", str(COMPOSE_FILE), "-f", str(self.override)]
        for extra in self.extra_files:
            cmd += ["-f", str(extra)]
        cmd += list(args)
        return run(cmd, timeout=timeout, check=check, env=self.env)

    def up_until_clients_exit(self) -> float:
        """`up -d` (images already built), then wait until every client has exited; the
        seconds it took."""
        t0 = time.monotonic()
        self.compose("up", "-d", "--no-build", timeout=UP_TIMEOUT)
        end = t0 + UP_TIMEOUT
        while True:
            states = {c: self.inspect(c)["State"] for c in CLIENTS}
            if all(s["Status"] == "exited" for s in states.values()):
                return time.monotonic() - t0
            if time.monotonic() > end:
                raise AssertionError(f"clients not done within {UP_TIMEOUT}s: {states}")
            time.sleep(0.25)

    def container(self, service: str) -> str:
        """The id of the service's container, running or not."""
        ids = self.compose("ps", "-a", "-q", service).stdout.split()
        assert len(ids) == 1, f"{service}: expected one container, got {ids}"
        return ids[0]

    def inspect(self, service: str) -> dict[str, Any]:
        return docker_inspect(self.container(service))

    def host_port(self, service: str, port: int) -> int:
        out = self.compose("port", service, str(port)).stdout.strip()
        return int(out.rsplit(":", 1)[1])

    def ask(self, service: str, port: int, timeout: float = 5.0) -> str:
        """One request over the published loopback port; the whole answer."""
        with socket.create_connection(
            ("127.0.0.1", self.host_port(service, port)), timeout=timeout
        ) as s:
            s.sendall((PROTOCOL.command + "\n").encode())
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def ask_until_reply(self, service: str, port: int, deadline_s: float = 60) -> re.Match[str]:
        """Ask until the answer is a reply line (the server may still be reconnecting)."""
        end = time.monotonic() + deadline_s
        last = ""
        while time.monotonic() < end:
            try:
                last = self.ask(service, port)
                m = REPLY_RE.fullmatch(last)
                if m:
                    return m
            except (OSError, AssertionError) as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise AssertionError(f"{service}: no reply within {deadline_s}s; last answer {last!r}")

    def wait_healthy(self, service: str, deadline_s: float = 90) -> dict[str, Any]:
        end = time.monotonic() + deadline_s
        info: dict[str, Any] = {}
        while time.monotonic() < end:
            info = self.inspect(service)
            health = (info["State"].get("Health") or {}).get("Status")
            if info["State"]["Running"] and health == "healthy":
                return info
            time.sleep(0.5)
        raise AssertionError(f"{service} not healthy within {deadline_s}s: {info.get('State')}")

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, check=False).stdout

    def resources(self) -> dict[str, list[str]]:
        """Containers, networks and volumes that carry this project's label."""
        label = f"label=com.docker.compose.project={self.project}"
        return {
            "containers": run(["docker", "ps", "-a", "-q", "--filter", label]).stdout.split(),
            "networks": run(["docker", "network", "ls", "-q", "--filter", label]).stdout.split(),
            "volumes": run(["docker", "volume", "ls", "-q", "--filter", label]).stdout.split(),
        }


def write_stack_files(tmp: Path, db_image: str) -> tuple[Path, Path, tuple[str, ...]]:
    # Passwords with characters a careless template or shell would mangle.
    root_pw = "r" + secrets.token_urlsafe(12) + "&%^"
    app_pw = "a" + secrets.token_urlsafe(12) + "&%#x"
    env_file = tmp / "stack.env"
    env_file.write_text(
        "\n".join(
            [
                f"MYSQL_ROOT_PASSWORD='{root_pw}'",
                f"APP_DB_PASSWORD='{app_pw}'",
                f"DB_IMAGE={db_image}",
                f"UPDATE_INTERVAL={UPDATE_INTERVAL}",
                f"IMAGE_PREFIX={IMAGE_PREFIX}",
                f"IMAGE_TAG={IMAGE_TAG}",
                "CLIENT_RETRIES=30",
                "",
            ]
        )
    )
    override = tmp / "ports.override.yml"
    lines = ["# Test override: each server's port on an ephemeral loopback port.", "services:"]
    for s in SERVERS:
        lines += [f"  {s.name}:", "    ports: !override", f'      - "127.0.0.1::{s.port}"']
    override.write_text("\n".join(lines) + "\n")
    return env_file, override, (root_pw, app_pw)
