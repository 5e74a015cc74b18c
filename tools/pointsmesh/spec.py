"""Load the two sources of truth: protocol/protocol.toml and roster.yaml."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    # Settings that must be set too when this one is (non-empty), e.g. a certificate's key.
    requires: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.env.lower().replace("_", "-")


@dataclass(frozen=True)
class SettingKind:
    """How a setting's text is read (protocol.toml [setting_kind.*]); see the comment there."""

    name: str
    type: str  # "int", "seconds", "text" or "choice"
    expect: str
    min: float = 0
    max: float = 0
    min_exclusive: bool = False
    min_bytes: int = 0
    max_bytes: int = 0
    no_space: bool = False
    no_comma: bool = False
    brackets: bool = False
    secret: bool = False
    choices: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def c_type(self) -> str:
        return {"int": "long", "seconds": "double", "text": "char", "choice": "int"}[self.type]

    @property
    def py_type(self) -> str:
        return {"int": "int", "seconds": "float", "text": "str", "choice": "str"}[self.type]


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    label_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    slot: int = -1  # "value": the first of its value slots (protocol order); -1 otherwise

    @property
    def shape(self) -> str:
        """How a program keeps it: "value" (counters and gauges: one slot per label value),
        "histogram" (the duration buckets) or "info" (labels without fixed values, always 1:
        the program fills them in)."""
        if self.type == "histogram":
            return "histogram"
        if self.labels and not self.label_values:
            return "info"
        return "value"

    @property
    def series(self) -> tuple[str, ...]:
        """The label values of a "value" metric, one per slot ("" for an unlabelled one)."""
        if self.shape != "value":
            return ()
        return self.label_values[self.labels[0]] if self.labels else ("",)


@dataclass(frozen=True)
class LogEvent:
    name: str
    level: str
    fields: tuple[str, ...]
    types: tuple[str, ...] = ()  # of the fields: "text", "int" or "seconds"

    @property
    def typed_fields(self) -> tuple[tuple[str, str], ...]:
        return tuple(zip(self.fields, self.types, strict=True))


@dataclass(frozen=True)
class Protocol:
    version: int
    command: str
    max_line_bytes: int
    reply_format: str
    reply_field_patterns: dict[str, str]
    errors: tuple[ErrorSpec, ...]
    setting_kinds: dict[str, SettingKind]
    server_settings: tuple[Setting, ...]
    client_settings: tuple[Setting, ...]
    sql: dict[str, str]
    duration_buckets: tuple[float, ...]
    metrics: tuple[Metric, ...]
    log_common_fields: tuple[str, ...]
    log_events: tuple[LogEvent, ...]
    connection: dict[str, Any] = field(default_factory=dict)
    # [tls.failure_reason]: handshake failure result -> OpenSSL reason names (upper case)
    tls_failure_reasons: dict[str, tuple[str, ...]] = field(default_factory=dict)

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

    def kind(self, setting: Setting) -> SettingKind:
        return self.setting_kinds[setting.kind]

    def reply_ere(self) -> str:
        """The reply line without its newline as one anchored POSIX extended regular expression
        (the C programs' regcomp), from the same field patterns as reply_regex."""
        out = ["^"]
        for i, part in enumerate(re.split(r"\{(\w+)\}", self.reply_format.rstrip("\n"))):
            if i % 2 == 0:
                out.append(re.sub(r"([][.^$*+?(){}|\\])", r"\\\1", part))
            else:
                out.append(f"({self.reply_field_patterns[part]})")
        out.append("$")
        return "".join(out)


def reply_regex(reply_format: str, user: str | None = None) -> str:
    """A regex (text, for fullmatch) of one reply line of reply_format, with the named groups
    user, points and last_update (the field patterns of protocol.toml); with user given, that
    row literally (and no user group)."""
    patterns = load_protocol().reply_field_patterns
    out = []
    for i, part in enumerate(re.split(r"\{(\w+)\}", reply_format)):
        if i % 2 == 0:
            out.append(re.escape(part))
        elif part == "user" and user is not None:
            out.append(re.escape(user))
        else:
            # NUL is never part of a field (see protocol.toml [reply.field_pattern]).
            field_re = patterns[part].replace("[^", "[^\\x00")
            out.append(f"(?P<{part}>{field_re})")
    return "".join(out)


REQUIRES_MAX = 2  # C: struct pts_setting's requires[]


def _setting(spec: dict[str, Any]) -> Setting:
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    return Setting(**fields)


def _setting_kind(name: str, spec: dict[str, Any]) -> SettingKind:
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                              for k, v in spec.items()}
    return SettingKind(name=name, **fields)


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
    slotted, slot = [], 0
    for m in metrics:
        if m.shape == "value":
            slotted.append(Metric(m.name, m.type, m.help, m.labels, m.label_values, slot))
            slot += len(m.series)
        else:
            slotted.append(m)
    metrics = slotted
    field_types = dict(data["log"]["field_type"])
    proto = Protocol(
        version=data["version"],
        command=data["request"]["command"],
        max_line_bytes=data["request"]["max_line_bytes"],
        reply_format=data["reply"]["format"],
        reply_field_patterns=dict(data["reply"]["field_pattern"]),
        errors=errors,
        setting_kinds={name: _setting_kind(name, spec)
                       for name, spec in data["setting_kind"].items()},
        server_settings=tuple(_setting(s) for s in data["server_config"]),
        client_settings=tuple(_setting(s) for s in data["client_config"]),
        sql=dict(data["sql"]),
        duration_buckets=tuple(float(b) for b in data["metrics"]["duration_buckets"]),
        metrics=tuple(metrics),
        log_common_fields=tuple(data["log"]["common_fields"]),
        connection={k: tuple(v) if isinstance(v, list) else v
                    for k, v in data["connection"].items()},
        tls_failure_reasons={k: tuple(v)
                             for k, v in data["tls"]["failure_reason"].items()},
        log_events=tuple(
            LogEvent(e["name"], e["level"], tuple(e["fields"]),
                     tuple(field_types.get(f, "?") for f in e["fields"]))
            for e in data["log_event"]
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
    results = next(m.label_values["result"] for m in p.metrics
                   if m.name == "points_tls_handshakes_total")
    for result in p.tls_failure_reasons:
        if result not in results:
            raise ValueError(f"protocol.toml: [tls.failure_reason] {result} is no result of "
                             "points_tls_handshakes_total")
    envs = [s.env for s in p.server_settings + p.client_settings]
    if len(set(envs)) != len(envs):
        raise ValueError("protocol.toml: duplicate setting")
    for table in (p.server_settings, p.client_settings):
        names = [s.env for s in table]
        for s in table:
            if len(s.requires) > REQUIRES_MAX or any(r not in names or r == s.env
                                                     for r in s.requires):
                raise ValueError(f"protocol.toml: {s.env} requires {s.requires!r}: at most "
                                 f"{REQUIRES_MAX} other settings of the same program")
    for s in p.server_settings + p.client_settings:
        if s.kind not in p.setting_kinds:
            raise ValueError(f"protocol.toml: {s.env} has an unknown kind {s.kind!r}")
    for k in p.setting_kinds.values():
        if k.type not in ("int", "seconds", "text", "choice"):
            raise ValueError(f"protocol.toml: setting kind {k.name} has a bad type {k.type!r}")
        if any(v not in k.choices for v in k.aliases.values()):
            raise ValueError(f"protocol.toml: setting kind {k.name}: an alias names no choice")
    if set(p.reply_field_patterns) != set(re.findall(r"\{(\w+)\}", p.reply_format)):
        raise ValueError("protocol.toml: reply.field_pattern must name exactly the format's fields")
    for m in p.metrics:
        if m.shape == "value" and len(m.labels) > 1:
            raise ValueError(f"protocol.toml: {m.name}: a counter or gauge has one label at most")
    for ev in p.log_events:
        for name, kind in ev.typed_fields:
            if kind not in ("text", "int", "seconds"):
                raise ValueError(f"protocol.toml: log field {name!r} needs a [log.field_type]")
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


def class_roster(size: int, seed: tuple[Member, ...] | None = None) -> tuple[Member, ...]:
    """A class of size members, for the scale tests and `make bench-k8s`: the roster's members,
    then student004, student005, ... on the next ports, two per member."""
    members = list(load_roster() if seed is None else seed)[:size]
    port = max((p for m in members for p in (m.c_port, m.python_port)), default=5000) + 1
    while len(members) < size:
        members.append(Member(f"student{len(members) + 1:03d}", port, port + 1))
        port += 2
    return tuple(members)


def chart_members(members: tuple[Member, ...]) -> list[dict[str, Any]]:
    """The chart's `members` value for these members."""
    return [{"name": m.name, "cPort": m.c_port, "pythonPort": m.python_port} for m in members]
