"""Bad values are refused by `helm template` (values.schema.json, or the templates where a
schema cannot say it) with a message naming the problem; the same command with a good value
renders (so each refusal is about that value)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartlib import CHART, helm, template_cmd


def values_file(tmp_path: Path, values: dict[str, Any]) -> list[str]:
    path = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["-f", str(path)]


GOOD_MEMBER = {"name": "akmal", "cPort": 5003, "pythonPort": 5004}


def members(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"members": list(entries)}


# id, bad values, good values (differing only in the bad value), words the error must contain
CASES: list[tuple[str, dict[str, Any], dict[str, Any], tuple[str, ...]]] = [
    ("member-name-not-a-dns-label", members({**GOOD_MEMBER, "name": "Akmal_1"}),
     members(GOOD_MEMBER), ("/members/0/name", "Akmal_1")),
    ("member-name-too-long", members({**GOOD_MEMBER, "name": "a" * 64}), members(GOOD_MEMBER),
     ("/members/0/name",)),
    ("port-0", members({**GOOD_MEMBER, "cPort": 0}), members(GOOD_MEMBER),
     ("/members/0/cPort",)),
    ("port-70000", members({**GOOD_MEMBER, "pythonPort": 70000}), members(GOOD_MEMBER),
     ("/members/0/pythonPort",)),
    ("port-not-a-number", members({**GOOD_MEMBER, "cPort": "5003x"}), members(GOOD_MEMBER),
     ("/members/0/cPort",)),
    ("member-without-port", members({"name": "akmal", "cPort": 5003}), members(GOOD_MEMBER),
     ("/members/0", "pythonPort")),
    ("no-members", members(), members(GOOD_MEMBER), ("/members",)),
    ("negative-update-interval", {"servers": {"updateInterval": -1}},
     {"servers": {"updateInterval": 1}}, ("/servers/updateInterval",)),
    ("replicas--1", {"servers": {"replicas": -1}}, {"servers": {"replicas": 3}},
     ("/servers/replicas",)),
    ("unknown-top-level-key", {"bogus": 1}, {}, ("bogus",)),
    ("unknown-servers-key", {"servers": {"replica": 2}}, {}, ("replica",)),
    ("external-database-without-host", {"database": {"enabled": False}},
     {"database": {"enabled": False},
      "externalDatabase": {"host": "db.example", "password": "x"}},
     ("externalDatabase", "host")),
    ("bad-pull-policy", {"image": {"pullPolicy": "Sometimes"}}, {}, ("pullPolicy",)),
]


@pytest.mark.parametrize(("bad", "good", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_refused_with_a_message(bad: dict[str, Any], good: dict[str, Any],
                                words: tuple[str, ...], tmp_path: Path) -> None:
    proc = helm(*template_cmd(*values_file(tmp_path, bad)), check=False)
    assert proc.returncode != 0, f"rendered despite the bad value:\n{proc.stdout[:2000]}"
    missing = [w for w in words if w not in proc.stderr]
    assert missing == [], f"the error does not name {missing}:\n{proc.stderr}"
    ok = helm(*template_cmd(*values_file(tmp_path, good)), check=False)
    assert ok.returncode == 0, ok.stderr


def test_schema_is_self_contained() -> None:
    """No remote $ref: helm would fetch it over the network on every install."""
    text = (CHART / "values.schema.json").read_text()
    schema = json.loads(text)
    assert schema.get("additionalProperties") is False
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    assert [r for r in refs if not r.startswith("#")] == []


# Beyond what a JSON schema can say: the templates must refuse these themselves.
@pytest.mark.parametrize(("values", "words"), [
    (members(GOOD_MEMBER, {**GOOD_MEMBER, "cPort": 5005, "pythonPort": 5006}), ("akmal",)),
], ids=["duplicate-member-name"])
def test_template_refuses(values: dict[str, Any], words: tuple[str, ...],
                          tmp_path: Path) -> None:
    proc = helm(*template_cmd(*values_file(tmp_path, values)), check=False)
    assert proc.returncode != 0, "rendered two members of the same name (duplicate objects)"
    assert all(w in proc.stderr for w in words), proc.stderr
