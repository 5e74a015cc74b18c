"""Where the chart tools are: helm, helm-unittest ("untt") and actionlint, as `make setup`
installed them.

tools/install-chart-tools.sh builds them (cached outside the checkout) and records their paths
in <venv>/chart-tools.env. The environment variables HELM, HELM_UNITTEST and ACTIONLINT override
the record (e.g. to try another helm).

    python -m pointsmesh.charttools      print the paths, or say what is missing
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import ROOT

RECORD_NAME = "chart-tools.env"


class ChartToolMissing(RuntimeError):
    """A chart tool is not installed (or its recorded path no longer exists)."""


def record_candidates() -> list[Path]:
    """The record files looked at, in order: this interpreter's venv, then the checkout's."""
    paths = [Path(sys.prefix) / RECORD_NAME, ROOT / ".venv" / RECORD_NAME]
    return list(dict.fromkeys(paths))


def read_record() -> dict[str, str]:
    """KEY=value lines of the first record file that exists ({} when none does)."""
    for path in record_candidates():
        if path.is_file():
            out: dict[str, str] = {}
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and not line.lstrip().startswith("#"):
                    out[key.strip()] = value.strip()
            return out
    return {}


def _tool(key: str, what: str) -> Path:
    override = os.environ.get(key)
    if override:
        path = Path(override)
        source = f"the environment variable {key}"
    else:
        recorded = read_record().get(key)
        if not recorded:
            where = " or ".join(str(p) for p in record_candidates())
            raise ChartToolMissing(
                f"{what} is not installed (no {key}= in {where}): run make setup "
                f"(tools/install-chart-tools.sh), or set {key} to the binary")
        path = Path(recorded)
        source = RECORD_NAME
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ChartToolMissing(
            f"{what}: {path} (from {source}) is not an executable file: run make setup")
    return path


def helm() -> Path:
    """The helm binary (Helm 4: ci/kind-airgap/helm.sh's build, the cluster's too)."""
    return _tool("HELM", "helm")


def helm_unittest() -> Path:
    """The helm-unittest binary (untt), run standalone: `untt CHART_DIR`."""
    return _tool("HELM_UNITTEST", "helm-unittest (untt)")


def actionlint() -> Path:
    """actionlint, the checker of the GitHub workflows."""
    return _tool("ACTIONLINT", "actionlint")


def main() -> int:
    status = 0
    tools = (("HELM", helm), ("HELM_UNITTEST", helm_unittest), ("ACTIONLINT", actionlint))
    for name, fn in tools:
        try:
            print(f"{name}={fn()}")
        except ChartToolMissing as e:
            print(f"{name}: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
