"""Load the two sources of truth: protocol/protocol.toml and roster.yaml."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import ROOT

PROTOCOL_FILE = ROOT / "protocol" / "protocol.toml"
ROSTER_FILE = ROOT / "roster.yaml"

_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,30}$")


@dataclass(frozen=True)
class ErrorSpec:
    code: str
    message: str
    retryable: bool

    @property
    def line(self) -> str:
        return f"ERROR {self.code} {self.message}\n"


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    kind: str
    help: str
    default_python: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.env.lower().replace("_", "-")


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    label_values: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class LogEvent:
    name: str
    level: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Protocol:
    version: int
    command: str
    max_line_bytes: int
    reply_format: str
    errors: tuple[ErrorSpec, ...]
    server_settings: tuple[Setting, ...]
    client_settings: tuple[Setting, ...]
    sql: dict[str, str]
    duration_buckets: tuple[float, ...]
    metrics: tuple[Metric, ...]
    log_common_fields: tuple[str, ...]
    log_events: tuple[LogEvent, ...]

    def error(self, code: str) -> ErrorSpec:
        for e in self.errors:
            if e.code == code:
                return e
        raise KeyError(code)

    def default(self, env: str) -> str:
        """The default value of a server or client setting."""
        for s in self.server_settings + self.client_settings:
            if s.env == env:
                return s.default
        raise KeyError(env)

    def reply(self, user: str, points: int, last_update: str) -> str:
        return self.reply_format.format(user=user, points=points, last_update=last_update)


REPLY_FIELD_RE = {
    "user": r"[^\r\n,]{1,50}",
    "points": r"-?[0-9]{1,20}",
    "last_update": r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}",
}


def reply_regex(reply_format: str, user: str | None = None) -> str:
    """A regex (text, for fullmatch) of one reply line of reply_format, with the named groups
    user, points and last_update; with user given, that row literally (and no user group)."""
    out = []
    for i, part in enumerate(re.split(r"\{(\w+)\}", reply_format)):
        if i % 2 == 0:
            out.append(re.escape(part))
        elif part == "user" and user is not None:
            out.append(re.escape(user))
        else:
            field_re = REPLY_FIELD_RE.get(part, r"[^\r\n]+")
            out.append(f"(?P<{part}>{field_re})")
    return "".join(out)


def load_protocol(path: Path = PROTOCOL_FILE) -> Protocol:
    data = tomllib.loads(path.read_text())
    errors = tuple(ErrorSpec(**e) for e in data["error"])
    metrics = []
    for m in data["metric"]:
        labels = tuple(m.get("labels", ()))
        values = {k: tuple(v) for k, v in m.get("label_values", {}).items()}
        metrics.append(Metric(m["name"], m["type"], m["help"], labels, values))
    # The code label of points_errors_total takes exactly the error codes.
    metrics = [
        Metric(m.name, m.type, m.help, m.labels, {"code": tuple(e.code for e in errors)})
        if m.name == "points_errors_total"
        else m
        for m in metrics
    ]
    proto = Protocol(
        version=data["version"],
        command=data["request"]["command"],
        max_line_bytes=data["request"]["max_line_bytes"],
        reply_format=data["reply"]["format"],
        errors=errors,
        server_settings=tuple(Setting(**s) for s in data["server_config"]),
        client_settings=tuple(Setting(**s) for s in data["client_config"]),
        sql=dict(data["sql"]),
        duration_buckets=tuple(float(b) for b in data["metrics"]["duration_buckets"]),
        metrics=tuple(metrics),
        log_common_fields=tuple(data["log"]["common_fields"]),
        log_events=tuple(
            LogEvent(e["name"], e["level"], tuple(e["fields"])) for e in data["log_event"]
        ),
    )
    _validate(proto)
    return proto


def _validate(p: Protocol) -> None:
    codes = [e.code for e in p.errors]
    if len(set(codes)) != len(codes):
        raise ValueError("protocol.toml: duplicate error code")
    for e in p.errors:
        if not re.fullmatch(r"[a-z][a-z-]*", e.code) or "\n" in e.message:
            raise ValueError(f"protocol.toml: bad error {e.code!r}")
    if str(p.max_line_bytes) not in p.error("line-too-long").message:
        raise ValueError("protocol.toml: line-too-long message must state max_line_bytes")
    envs = [s.env for s in p.server_settings + p.client_settings]
    if len(set(envs)) != len(envs):
        raise ValueError("protocol.toml: duplicate setting")
    if list(p.duration_buckets) != sorted(p.duration_buckets):
        raise ValueError("protocol.toml: duration_buckets must ascend")


@dataclass(frozen=True)
class Member:
    name: str
    c_port: int
    python_port: int

    @property
    def c_server(self) -> str:
        return f"c-server-{self.name}"

    @property
    def python_server(self) -> str:
        return f"python-server-{self.name}"

    @property
    def c_client(self) -> str:
        return f"c-client-{self.name}"

    @property
    def python_client(self) -> str:
        return f"python-client-{self.name}"

    @property
    def c_row(self) -> str:
        return f"c_user-{self.name}"

    @property
    def python_row(self) -> str:
        return f"python_user-{self.name}"


@dataclass(frozen=True)
class Server:
    """One server of the roster: its language, names and port."""

    member: str
    language: str  # "c" or "python"
    name: str
    client: str
    row: str
    port: int


def load_roster(path: Path = ROSTER_FILE) -> tuple[Member, ...]:
    data = yaml.safe_load(path.read_text())
    members = tuple(
        Member(m["name"], int(m["cPort"]), int(m["pythonPort"])) for m in data["members"]
    )
    names = [m.name for m in members]
    ports = [p for m in members for p in (m.c_port, m.python_port)]
    if len(set(names)) != len(names):
        raise ValueError("roster.yaml: duplicate member name")
    if len(set(ports)) != len(ports):
        raise ValueError("roster.yaml: a port is used twice")
    for m in members:
        if not _NAME_RE.fullmatch(m.name):
            raise ValueError(f"roster.yaml: member name {m.name!r} must match {_NAME_RE.pattern}")
        for p in (m.c_port, m.python_port):
            if not 1 <= p <= 65535:
                raise ValueError(f"roster.yaml: port {p} out of range")
    return members


def servers(members: tuple[Member, ...]) -> list[Server]:
    out: list[Server] = []
    for m in members:
        out.append(Server(m.name, "c", m.c_server, m.c_client, m.c_row, m.c_port))
        out.append(
            Server(m.name, "python", m.python_server, m.python_client, m.python_row, m.python_port)
        )
    return out
