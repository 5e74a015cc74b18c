"""The Grafana dashboard (helm/points-mesh/files/dashboard.json) queries only metrics the servers
export: every metric name in its PromQL is one of protocol/protocol.toml (a histogram's through
its _bucket, _sum and _count series)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from chartlib import CHART

from pointsmesh.spec import load_protocol

DASHBOARD = CHART / "files" / "dashboard.json"

# PromQL words that are not metric names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "inf", "nan", "atan2"}


def exported_series() -> set[str]:
    out = set()
    for m in load_protocol().metrics:
        out.add(m.name)
        if m.type == "histogram":
            out |= {f"{m.name}_bucket", f"{m.name}_sum", f"{m.name}_count"}
    return out


def exprs(node: Any) -> Iterator[str]:
    """Every `expr` (a panel target's PromQL) under node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from exprs(value)
    elif isinstance(node, list):
        for v in node:
            yield from exprs(v)


def queries(board: dict[str, Any]) -> Iterator[str]:
    """The dashboard's PromQL: targets' expr and the query variables' queries."""
    yield from exprs(board.get("panels", []))
    for var in (board.get("templating") or {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            yield q["query"] if isinstance(q, dict) else str(q)


def metric_names(promql: str) -> set[str]:
    """Metric names of a PromQL expression (or a Grafana label_values()/query_result() query)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', "", promql)   # strings
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "", text)                          # Grafana variables
    text = re.sub(r"\{[^}]*\}", "", text)                                   # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                                  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    # label_values(metric, label): the second argument is a label name.
    text = re.sub(r"\blabel_values\s*\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", text)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(?!\w)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS or re.fullmatch(r"\d+\w*", word):
            continue
        names.add(word)
    return names


def test_metric_name_extraction() -> None:
    assert metric_names('sum by (le) (rate(a_bucket{x="y"}[$__rate_interval]))') == {"a_bucket"}
    assert metric_names("histogram_quantile(0.99, sum(rate(b[5m])) by (le))") == {"b"}
    assert metric_names("sum(c) / on(pod) group_left(version) d") == {"c", "d"}
    assert metric_names("label_values(points_build_info, pod)") == {"points_build_info"}
    assert metric_names("e offset 5m > bool 1") == {"e"}


def test_dashboard_queries_only_exported_metrics() -> None:
    if not DASHBOARD.exists():
        pytest.fail(f"{DASHBOARD.relative_to(CHART)} missing (metrics.dashboard needs it)")
    board = json.loads(DASHBOARD.read_text())
    texts = list(queries(board))
    assert texts, "no queries found in the dashboard"
    used = set().union(*(metric_names(q) for q in texts))
    assert used, "no metric names found in the queries"
    unknown = sorted(used - exported_series())
    assert unknown == [], f"not exported by the servers (protocol/protocol.toml): {unknown}"


def test_dashboard_panels_have_queries() -> None:
    board = json.loads(DASHBOARD.read_text())
    empty = []
    for panel in board.get("panels", []):
        panels = panel.get("panels", [panel]) if panel.get("type") == "row" else [panel]
        for p in panels:
            if p.get("type") not in ("row", "text") and not list(exprs(p.get("targets", []))):
                empty.append(p.get("title"))
    assert empty == []
