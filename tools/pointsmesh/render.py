"""Render every derived file from protocol/protocol.toml and roster.yaml.

    python -m pointsmesh.render          # write the files
    python -m pointsmesh.render --check  # exit 1 and name the files that differ
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from . import ROOT
from .render_chart import chart_targets
from .render_compose import compose_targets
from .render_k8s import k8s_targets
from .spec import Member, Protocol, load_protocol, load_roster

HEADER = "Generated from protocol/protocol.toml by `make render`. Do not edit."


def c_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            raise ValueError(f"non-ASCII character in C string: {s!r}")
    out.append('"')
    return "".join(out)


def c_ident(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", s).upper()


def reply_printf(fmt: str) -> str:
    """Turn the {user}/{points}/{last_update} template into a printf format."""
    names = re.findall(r"\{(\w+)\}", fmt)
    if names != ["user", "points", "last_update"]:
        raise ValueError("reply.format must use {user}, {points}, {last_update} in that order")
    out = fmt.replace("%", "%%")
    return (
        out.replace("{user}", "%s").replace("{points}", "%lld").replace("{last_update}", "%s")
    )


def render_c_header(p: Protocol) -> str:
    lines = [
        f"/* {HEADER} */",
        "#ifndef POINTS_PROTOCOL_H",
        "#define POINTS_PROTOCOL_H",
        "",
        f"#define PTS_PROTOCOL_VERSION {p.version}",
        f"#define PTS_COMMAND {c_str(p.command)}",
        f"#define PTS_MAX_LINE_BYTES {p.max_line_bytes}",
        '#define PTS_ERROR_PREFIX "ERROR "',
        "/* printf format: user (const char *), points (long long), last update (const char *) */",
        f"#define PTS_REPLY_FORMAT {c_str(reply_printf(p.reply_format))}",
        "",
        "/* Error replies: pts_error_line[e] is the whole line, newline included. */",
        "enum pts_error {",
    ]
    lines += [f"    PTS_ERR_{c_ident(e.code)}," for e in p.errors]
    lines += [
        "    PTS_ERR_COUNT",
        "};",
        "extern const char *const pts_error_code[PTS_ERR_COUNT];",
        "extern const char *const pts_error_line[PTS_ERR_COUNT];",
        "extern const unsigned char pts_error_retryable[PTS_ERR_COUNT];",
        "",
        "/* Settings: environment variable, flag overriding it, default, kind, help. */",
        "struct pts_setting {",
        "    const char *env;",
        "    const char *flag;",
        "    const char *def;",
        "    const char *kind;",
        "    const char *help;",
        "};",
        "enum pts_server_setting {",
    ]
    lines += [f"    PTS_SET_{s.env}," for s in p.server_settings]
    lines += ["    PTS_SET_COUNT", "};", "enum pts_client_setting {"]
    lines += [f"    PTS_CSET_{s.env}," for s in p.client_settings]
    lines += [
        "    PTS_CSET_COUNT",
        "};",
        "extern const struct pts_setting pts_server_settings[PTS_SET_COUNT];",
        "extern const struct pts_setting pts_client_settings[PTS_CSET_COUNT];",
        "",
        "/* SQL statements; '?' marks a bound parameter. */",
    ]
    lines += [f"#define PTS_SQL_{c_ident(k)} {c_str(v)}" for k, v in p.sql.items()]
    lines += [
        "",
        "/* Metrics: names, types and help text for /metrics. */",
    ]
    for m in p.metrics:
        lines.append(f"#define PTS_METRIC_{c_ident(m.name[len('points_'):])} {c_str(m.name)}")
    lines += [
        "struct pts_metric {",
        "    const char *name;",
        "    const char *type;",
        "    const char *help;",
        "};",
        "enum pts_metric_id {",
    ]
    lines += [f"    PTS_M_{c_ident(m.name[len('points_'):])}," for m in p.metrics]
    lines += [
        "    PTS_M_COUNT",
        "};",
        "extern const struct pts_metric pts_metrics[PTS_M_COUNT];",
        "",
        "/* Values of the op label of points_db_errors_total. */",
        "enum pts_db_op {",
    ]
    ops = next(m for m in p.metrics if m.name == "points_db_errors_total").label_values["op"]
    lines += [f"    PTS_OP_{c_ident(o)}," for o in ops]
    lines += [
        "    PTS_OP_COUNT",
        "};",
        "extern const char *const pts_db_op_name[PTS_OP_COUNT];",
        "",
        f"#define PTS_DURATION_BUCKETS_COUNT {len(p.duration_buckets)}",
        "extern const double pts_duration_buckets[PTS_DURATION_BUCKETS_COUNT];",
        "",
        "/* Log events: name, level and the event's own fields after the common ones. */",
        "#define PTS_LOG_MAX_FIELDS 8",
        "struct pts_log_event {",
        "    const char *name;",
        "    const char *level;",
        "    const char *fields[PTS_LOG_MAX_FIELDS];",
        "};",
        "enum pts_log_event_id {",
    ]
    lines += [f"    PTS_EV_{c_ident(e.name)}," for e in p.log_events]
    lines += [
        "    PTS_EV_COUNT",
        "};",
        "extern const struct pts_log_event pts_log_events[PTS_EV_COUNT];",
        "",
        "#endif /* POINTS_PROTOCOL_H */",
        "",
    ]
    return "\n".join(lines)


def _setting_rows(settings, language: str) -> list[str]:
    rows = []
    for s in settings:
        default = s.default_python if (language == "python" and s.default_python) else s.default
        rows.append(
            f"    {{{c_str(s.env)}, {c_str(s.flag)}, {c_str(default)}, {c_str(s.kind)}, "
            f"{c_str(s.help)}}},"
        )
    return rows


def render_c_source(p: Protocol) -> str:
    lines = [
        f"/* {HEADER} */",
        '#include "points_protocol.h"',
        "",
        "const char *const pts_error_code[PTS_ERR_COUNT] = {",
    ]
    lines += [f"    {c_str(e.code)}," for e in p.errors]
    lines += ["};", "", "const char *const pts_error_line[PTS_ERR_COUNT] = {"]
    lines += [f"    {c_str(e.line)}," for e in p.errors]
    lines += ["};", "", "const unsigned char pts_error_retryable[PTS_ERR_COUNT] = {"]
    lines += [f"    {int(e.retryable)}," for e in p.errors]
    lines += ["};", "", "const struct pts_setting pts_server_settings[PTS_SET_COUNT] = {"]
    lines += _setting_rows(p.server_settings, "c")
    lines += ["};", "", "const struct pts_setting pts_client_settings[PTS_CSET_COUNT] = {"]
    lines += _setting_rows(p.client_settings, "c")
    lines += ["};", "", "const struct pts_metric pts_metrics[PTS_M_COUNT] = {"]
    lines += [f"    {{{c_str(m.name)}, {c_str(m.type)}, {c_str(m.help)}}}," for m in p.metrics]
    ops = next(m for m in p.metrics if m.name == "points_db_errors_total").label_values["op"]
    lines += ["};", "", "const char *const pts_db_op_name[PTS_OP_COUNT] = {"]
    lines += [f"    {c_str(o)}," for o in ops]
    lines += ["};", "", "const double pts_duration_buckets[PTS_DURATION_BUCKETS_COUNT] = {"]
    lines += [f"    {b!r}," for b in p.duration_buckets]
    lines += ["};", "", "const struct pts_log_event pts_log_events[PTS_EV_COUNT] = {"]
    for e in p.log_events:
        if len(e.fields) > 8:
            raise ValueError(f"log event {e.name} has more than 8 fields")
        fields = ", ".join(c_str(f) for f in e.fields) or "0"
        lines.append(f"    {{{c_str(e.name)}, {c_str(e.level)}, {{{fields}}}}},")
    lines += ["};", ""]
    return "\n".join(lines)


def py(v: object) -> str:
    """A Python literal for a str/int/float/bool/tuple (strings always double-quoted)."""
    if isinstance(v, bool):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, tuple):
        inner = ", ".join(py(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return repr(v)


def _py_common(p: Protocol) -> list[str]:
    lines = [
        f'"""{HEADER}"""',
        "",
        "# ruff: noqa: E501",
        "",
        "from __future__ import annotations",
        "",
        "from typing import Final, NamedTuple",
        "",
        f"PROTOCOL_VERSION: Final = {p.version}",
        f"COMMAND: Final = {py(p.command)}",
        f"MAX_LINE_BYTES: Final = {p.max_line_bytes}",
        'ERROR_PREFIX: Final = "ERROR "',
        f"REPLY_FORMAT: Final = {py(p.reply_format)}",
        "",
        "",
        "class ErrorSpec(NamedTuple):",
        "    code: str",
        "    message: str",
        "    retryable: bool",
        "    line: bytes",
        "",
        "",
        "class Setting(NamedTuple):",
        "    env: str",
        "    flag: str",
        "    default: str",
        "    kind: str",
        "    help: str",
        "",
        "",
        "ERRORS: Final[dict[str, ErrorSpec]] = {",
    ]
    for e in p.errors:
        lines.append(
            f"    {py(e.code)}: ErrorSpec({py(e.code)}, {py(e.message)}, {e.retryable!r}, "
            f"{'b' + py(e.line)}),"
        )
    lines.append("}")
    return lines


def _py_settings(name: str, settings, language: str) -> list[str]:
    lines = ["", f"{name}: Final[tuple[Setting, ...]] = ("]
    for s in settings:
        default = s.default_python if (language == "python" and s.default_python) else s.default
        lines.append(
            f"    Setting({py(s.env)}, {py(s.flag)}, {py(default)}, {py(s.kind)}, {py(s.help)}),"
        )
    lines.append(")")
    return lines


def render_py_server(p: Protocol) -> str:
    lines = _py_common(p)
    lines += _py_settings("SERVER_SETTINGS", p.server_settings, "python")
    lines += ["", "# SQL statements; '?' marks a bound parameter."]
    lines += [f"SQL_{c_ident(k)}: Final = {py(v)}" for k, v in p.sql.items()]
    lines += [
        "",
        "",
        "class MetricSpec(NamedTuple):",
        "    name: str",
        "    type: str",
        "    help: str",
        "    labels: tuple[str, ...]",
        "    label_values: dict[str, tuple[str, ...]]",
        "",
        "",
        "METRICS: Final[tuple[MetricSpec, ...]] = (",
    ]
    for m in p.metrics:
        values = "{" + ", ".join(f"{py(k)}: {py(v)}" for k, v in m.label_values.items()) + "}"
        lines.append(
            f"    MetricSpec({py(m.name)}, {py(m.type)}, {py(m.help)}, {py(m.labels)}, {values}),"
        )
    lines += [
        ")",
        f"DURATION_BUCKETS: Final = {py(p.duration_buckets)}",
        "",
        "# Logs: common leading fields, then per event (level, own fields).",
        f"LOG_COMMON_FIELDS: Final = {py(p.log_common_fields)}",
        "LOG_EVENTS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {",
    ]
    lines += [f"    {py(e.name)}: ({py(e.level)}, {py(e.fields)})," for e in p.log_events]
    lines += ["}", ""]
    return "\n".join(lines)


def render_py_client(p: Protocol) -> str:
    lines = _py_common(p)
    lines += _py_settings("CLIENT_SETTINGS", p.client_settings, "python")
    lines.append("")
    return "\n".join(lines)


def sql_literal(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def render_seed(members: tuple[Member, ...], time_zone: str = "+08:00") -> str:
    # The Helm chart renders the same text from its values (templates/_helpers.tpl,
    # points-mesh.seedSql); tests/chart checks that both agree byte for byte.
    lines = [
        "-- Seed rows: two per roster member, idempotent (an existing row keeps its points).",
        "-- Rendered from the roster by `make render` (sql/02-seed.sql) and by the Helm chart (its",
        "-- database init ConfigMap, from .Values.members). Do not edit.",
        "-- Stamped in the servers' session time zone (DB_TIMEZONE).",
        f"SET time_zone = {sql_literal(time_zone)};",
        "USE project_db;",
        "",
    ]
    for m in members:
        for row in (m.c_row, m.python_row):
            lines.append(
                "INSERT INTO users (user, points, datetime_stamp) "
                f"VALUES ({sql_literal(row)}, 0, NOW()) ON DUPLICATE KEY UPDATE user = user;"
            )
    lines.append("")
    return "\n".join(lines)


def _md(s: str) -> str:
    return s.replace("|", "\\|")


def render_reference(p: Protocol) -> str:
    """docs/reference.md: the operator's view of protocol.toml."""
    lines = [
        "<!-- Generated from protocol/protocol.toml by `make render`. Do not edit. -->",
        "# Reference: settings, replies, metrics, logs",
        "",
        f"Request: `{p.command}` + `\\n` (`\\r\\n` accepted), at most {p.max_line_bytes} bytes.",
        "",
        f"Reply: `{p.reply_format.rstrip()}` + `\\n`, then the server closes the connection.",
        "",
        "## Error replies",
        "",
        "One line, then the server closes the connection. Clients retry the retryable ones.",
        "",
        "| line | retryable |",
        "|---|---|",
    ]
    lines += [f"| `{_md(e.line.rstrip())}` | {'yes' if e.retryable else 'no'} |" for e in p.errors]
    for title, settings, note in (
        ("Server settings", p.server_settings, "C and Python servers"),
        ("Client settings", p.client_settings, "C and Python clients"),
    ):
        lines += [
            "",
            f"## {title}",
            "",
            f"Environment variable, or the flag that overrides it ({note}).",
            "",
            "| variable | flag | default | meaning |",
            "|---|---|---|---|",
        ]
        for s in settings:
            default = f"`{s.default}`" if s.default else "(empty)"
            if s.default_python:
                default += f" (Python: `{s.default_python}`)"
            lines.append(f"| `{s.env}` | `{s.flag}` | {default} | {_md(s.help)} |")
    lines += [
        "",
        "## Metrics (`/metrics` on `HEALTH_PORT`)",
        "",
        "| name | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    for m in p.metrics:
        labels = ", ".join(m.labels) or "-"
        lines.append(f"| `{m.name}` | {m.type} | {labels} | {_md(m.help)} |")
    lines += [
        "",
        f"Histogram buckets (seconds): {', '.join(f'{b:g}' for b in p.duration_buckets)}.",
        "",
        "## Log events",
        "",
        "One JSON object per line on stdout. Every line starts with "
        + ", ".join(f"`{f}`" for f in p.log_common_fields)
        + "; then the event's own fields:",
        "",
        "| event | level | fields |",
        "|---|---|---|",
    ]
    for e in p.log_events:
        lines.append(f"| `{e.name}` | {e.level} | {', '.join(e.fields) or '-'} |")
    lines.append("")
    return "\n".join(lines)


def targets() -> dict[Path, Callable[[], str]]:
    """Every rendered file and the function that produces its text."""
    p = load_protocol()
    members = load_roster()
    out: dict[Path, Callable[[], str]] = {
        ROOT / "protocol/points_protocol.h": lambda: render_c_header(p),
        ROOT / "protocol/points_protocol.c": lambda: render_c_source(p),
        ROOT / "services/py-server/src/points_server/protocol.py": lambda: render_py_server(p),
        ROOT / "clients/py-client/src/points_client/protocol.py": lambda: render_py_client(p),
        ROOT / "sql/02-seed.sql": lambda: render_seed(members, p.default("DB_TIMEZONE")),
        ROOT / "docs/reference.md": lambda: render_reference(p),
        **compose_targets(),
        **chart_targets(),
        **k8s_targets(),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    args = ap.parse_args(argv)
    drift = []
    for path, make in targets().items():
        text = make()
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        rel = path.relative_to(ROOT)
        if args.check:
            drift.append(str(rel))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"rendered {rel}")
    if drift:
        print("out of date (run `make render`): " + ", ".join(drift), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
