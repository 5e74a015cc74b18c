"""Render the parts of the Helm chart (helm/points-mesh/) that come from other sources.

One of pointsmesh.render's targets, so `make render` writes them and `--check` reports drift:
  - Chart.yaml: `version` and `appVersion`, from the repository's VERSION (the chart and the
    images it deploys by default are released together);
  - values.yaml: the `members:` block between its BEGIN/END markers, from roster.yaml;
  - files/sql/: copies of sql/01-schema.sql, sql/03-app-user.sh and sql/app-user.sql.in (Helm
    reads only files inside the chart); the seed rows are rendered by the chart itself from
    .Values.members (tests/chart proves they equal sql/02-seed.sql);
  - README.md: the values table between its markers, from values.schema.json and values.yaml.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from . import ROOT, project_version
from .spec import Member, load_roster

CHART = ROOT / "helm" / "points-mesh"
SQL_COPIES = ("01-schema.sql", "03-app-user.sh", "app-user.sql.in")
# SemVer 2, which Helm requires of a chart's version.
SEMVER = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")


def replace_block(text: str, begin: str, end: str, body: str, path: Path) -> str:
    """TEXT with the lines strictly between the BEGIN and END marker lines replaced by BODY."""
    lines = text.splitlines(keepends=True)
    try:
        b = next(i for i, line in enumerate(lines) if line.strip() == begin)
        e = next(i for i, line in enumerate(lines) if i > b and line.strip() == end)
    except StopIteration:
        raise ValueError(f"{path}: markers {begin!r} / {end!r} not found") from None
    return "".join(lines[: b + 1]) + body + "".join(lines[e:])


def render_chart_yaml(current: str, version: str, path: Path) -> str:
    """Chart.yaml with its `version` and `appVersion` lines set to VERSION."""
    if not SEMVER.fullmatch(version):
        raise ValueError(f"VERSION {version!r} is not a SemVer version, which Helm requires")
    text = current
    for key, value in (("version", version), ("appVersion", f'"{version}"')):
        text, n = re.subn(rf"(?m)^{key}:.*$", f"{key}: {value}", text)
        if n != 1:
            raise ValueError(f"{path}: expected one top-level `{key}:` line, found {n}")
    return text


def render_members_block(members: tuple[Member, ...]) -> str:
    rows = [
        f"  - {{name: {m.name}, cPort: {m.c_port}, pythonPort: {m.python_port}}}\n"
        for m in members
    ]
    return "members:\n" + "".join(rows)


def render_values(members: tuple[Member, ...], current: str, path: Path) -> str:
    return replace_block(
        current,
        "# BEGIN members (rendered from roster.yaml)",
        "# END members",
        render_members_block(members),
        path,
    )


def sql_copy(name: str) -> str:
    text = (ROOT / "sql" / name).read_text()
    note = f"Copy of sql/{name}, made by `make render` for the Helm chart. Do not edit."
    prefix = "-- " if name.endswith((".sql", ".sql.in")) else "# "
    if text.startswith("# shellcheck"):
        # Keep the shellcheck directive first.
        first, rest = text.split("\n", 1)
        return f"{first}\n{prefix}{note}\n{rest}"
    return f"{prefix}{note}\n{text}"


def _type_of(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in node:
        ref = node["$ref"].rsplit("/", 1)[-1]
        target = defs[ref]
        inner = _type_of(target, defs)
        return {"port": "port (1-65535)", "seconds": "number > 0", "quantity": "quantity"}.get(
            ref, inner
        )
    t = node.get("type", "")
    if isinstance(t, list):
        return " or ".join(t)
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if t == "integer" and "minimum" in node:
        return f"integer >= {node['minimum']}"
    return str(t)


def _default(values: Any, key: str) -> str:
    node = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""
        node = node[part]
    if key == "members":
        return "the roster (roster.yaml)"
    text = json.dumps(node, separators=(", ", ": "))
    if len(text) > 60:
        text = text[:57] + "..."
    return f"`{text}`".replace("|", "\\|")


def _rows(
    node: dict[str, Any], prefix: str, defs: dict[str, Any], values: Any, out: list[str]
) -> None:
    for name, sub in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        resolved = defs[sub["$ref"].rsplit("/", 1)[-1]] if "$ref" in sub else sub
        desc = sub.get("description") or resolved.get("description", "")
        nested = resolved.get("type") == "object" and "properties" in resolved
        if nested and not ("additionalProperties" in resolved and key.endswith("resources")):
            if desc:
                out.append(f"| `{key}` | object | | {desc} |")
            _rows(resolved, key + ".", defs, values, out)
            continue
        out.append(f"| `{key}` | {_type_of(sub, defs)} | {_default(values, key)} | {desc} |")


def render_values_table(schema: dict[str, Any], values: Any) -> str:
    out = ["| key | type | default | description |", "|---|---|---|---|"]
    _rows(schema, "", schema.get("definitions", {}), values, out)
    return "\n".join(out) + "\n"


def render_readme(current: str, path: Path, values_text: str) -> str:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load(values_text)
    body = render_values_table(schema, values)
    return replace_block(
        current,
        "<!-- BEGIN values (rendered from values.schema.json by `make render`) -->",
        "<!-- END values -->",
        body,
        path,
    )


def chart_targets() -> dict[Path, Callable[[], str]]:
    members = load_roster()
    chart_path = CHART / "Chart.yaml"
    values_path = CHART / "values.yaml"
    readme_path = CHART / "README.md"

    def values() -> str:
        return render_values(members, values_path.read_text(), values_path)

    def readme() -> str:
        return render_readme(readme_path.read_text(), readme_path, values())

    def chart() -> str:
        return render_chart_yaml(chart_path.read_text(), project_version(), chart_path)

    out: dict[Path, Callable[[], str]] = {
        chart_path: chart, values_path: values, readme_path: readme
    }
    for name in SQL_COPIES:
        out[CHART / "files" / "sql" / name] = partial(sql_copy, name)
    return out
