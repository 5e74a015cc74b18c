"""Development tools of the points mesh (not shipped in any image)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_version() -> str:
    """The repository's version: VERSION, the one place it is written (images, packages, chart
    and C programs all take it from there)."""
    return (ROOT / "VERSION").read_text().strip()
