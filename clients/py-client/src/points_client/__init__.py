"""Client of the points mesh servers (docs/design.md, section 8).

`python-client` / `python -m points_client` asks a server for its latest points and prints the
reply line; it behaves like the C client (same settings, messages and exit codes).
"""

# The repository's VERSION, rendered into the generated protocol module (the package metadata
# carries the same: its build read the file; tests/unit/test_version.py checks both).
from .generated.protocol import VERSION as __version__

__all__ = ["__version__"]
