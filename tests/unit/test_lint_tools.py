"""The linters of `make lint`: shellcheck runs on every tracked shell script, found by name or
shebang, so a new script cannot be left out by forgetting to list it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pointsmesh import ROOT, lint_shell


def lint_recipe() -> list[str]:
    """The command lines of the Makefile's `lint` target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("lint:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_lint_runs_shellcheck() -> None:
    assert "$(PYTHON) -m pointsmesh.lint_shell" in lint_recipe()


def test_every_tracked_executable_is_linted_unless_it_is_python() -> None:
    """An executable that is not Python is a script of ours: it must be in the shellcheck list
    (a script with an unusual shebang would otherwise be skipped silently)."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-s", "-z"], check=True, capture_output=True
    ).stdout.decode()
    scripts = set(lint_shell.shell_scripts())
    unlinted = []
    for entry in filter(None, out.split("\0")):
        mode, _, rest = entry.partition(" ")
        path = rest.split("\t", 1)[1]
        if mode != "100755" or not (ROOT / path).is_file():
            continue
        with (ROOT / path).open("rb") as f:
            first = f.readline(256)
        if re.match(rb"#!\S*(/| )python3?\b", first):
            continue
        if path not in scripts:
            unlinted.append(path)
    assert unlinted == []


def test_every_tracked_sh_file_is_linted() -> None:
    scripts = lint_shell.shell_scripts()
    tracked_sh = [p for p in lint_shell.tracked_files() if p.endswith(".sh")]
    assert set(tracked_sh) <= set(scripts)
    # the sourced and extension-less ones too
    assert {".ci/run", ".ci/layers.sh", "ci/kind-airgap/lib.sh", "sql/03-app-user.sh"} <= set(
        scripts
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with scripts of every kind, tracked or not."""
    files = {
        "run": "#!/usr/bin/env bash\necho hi\n",
        "posix": "#!/bin/sh\necho hi\n",
        "env-s": "#!/usr/bin/env -S bash -e\necho hi\n",
        "lib/helpers.sh": "# shellcheck shell=bash\nf() { :; }\n",
        "tool.py": "#!/usr/bin/env python3\nprint('hi')\n",
        "shower": "#!/usr/bin/env shower\n",
        "notes.txt": "a script starts with #!/bin/sh\n",
        "untracked.sh": "echo hi\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    os.symlink("run", tmp_path / "link.sh")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    tracked = [n for n in files if n != "untracked.sh"] + ["link.sh"]
    subprocess.run(["git", "-C", str(tmp_path), "add", "--", *tracked], check=True)
    return tmp_path


def test_scripts_are_found_by_name_or_shebang(repo: Path) -> None:
    assert lint_shell.shell_scripts(repo) == ["env-s", "lib/helpers.sh", "posix", "run"]


def test_shellcheck_is_installed_and_fails_on_a_bad_script(tmp_path: Path) -> None:
    """The pinned shellcheck is in the venv (make setup) and catches an unquoted variable."""
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nls $1\n")
    result = subprocess.run(
        [lint_shell.shellcheck_path(), "--format=gcc", str(bad)], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "SC2086" in result.stdout


def test_make_lint_runs_the_type_checker_over_every_python_tree() -> None:
    assert "$(PYTHON) -m mypy" in lint_recipe()


    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    unchecked = [p for p in tracked if not any(p.startswith(f.rstrip("/") + "/") for f in files)]
    assert unchecked == [], "Python files outside [tool.mypy] files"


def test_the_type_checker_fails_on_a_type_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n")
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental",
                             "--config-file", "/dev/null", str(bad)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert 'Incompatible return value type (got "int", expected "str")' in result.stdout
