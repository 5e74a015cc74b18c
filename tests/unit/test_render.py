"""The sources of truth and what is rendered from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pointsmesh import ROOT, render
from pointsmesh.spec import load_protocol, load_roster, servers


def test_rendered_files_are_up_to_date():
    res = subprocess.run([sys.executable, "-m", "pointsmesh.render", "--check"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr


def test_roster_matches_the_seed_table():
    got = [(s.name, s.port, s.row) for s in servers(load_roster())][:6]
    assert got == [
        ("c-server-azmeer", 5001, "c_user-azmeer"),
        ("python-server-azmeer", 5002, "python_user-azmeer"),
        ("c-server-akmal", 5003, "c_user-akmal"),
        ("python-server-akmal", 5004, "python_user-akmal"),
        ("c-server-hasif", 5005, "c_user-hasif"),
        ("python-server-hasif", 5006, "python_user-hasif"),
    ]


def test_a_fourth_member_is_one_line(tmp_path: Path):
    text = (ROOT / "roster.yaml").read_text()
    roster = tmp_path / "roster.yaml"
    roster.write_text(text + "  - {name: zaid, cPort: 5007, pythonPort: 5008}\n")
    members = load_roster(roster)
    assert [m.name for m in members][-1] == "zaid"
    seed = render.render_seed(members)
    assert "'c_user-zaid'" in seed and "'python_user-zaid'" in seed


@pytest.mark.parametrize(
    "line, message",
    [
        ("  - {name: dup, cPort: 5001, pythonPort: 5099}\n", "port"),
        ("  - {name: akmal, cPort: 5097, pythonPort: 5098}\n", "duplicate"),
        ("  - {name: Bad-Name, cPort: 5097, pythonPort: 5098}\n", "name"),
        ("  - {name: big, cPort: 70000, pythonPort: 5098}\n", "range"),
    ],
)
def test_bad_roster_is_refused(tmp_path: Path, line: str, message: str):
    roster = tmp_path / "roster.yaml"
    roster.write_text((ROOT / "roster.yaml").read_text() + line)
    with pytest.raises(ValueError, match=message):
        load_roster(roster)


def test_reply_format_renders_to_printf():
    proto = load_protocol()
    fmt = render.reply_printf(proto.reply_format)
    assert fmt == "User: %s, Points: %lld, Last Update: %s\n"


def test_c_strings_are_escaped():
    assert render.c_str('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    with pytest.raises(ValueError):
        render.c_str("é")


def test_error_lines_are_single_lines():
    for e in load_protocol().errors:
        assert e.line.startswith("ERROR " + e.code + " ")
        assert e.line.endswith("\n") and e.line.count("\n") == 1
