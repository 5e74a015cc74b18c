"""Development tools of the points mesh (not shipped in any image)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
