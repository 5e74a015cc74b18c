"""The Python server of the points mesh.

It owns one row of ``project_db.users``, answers ``REQUEST_LATEST_POINTS`` with that row and bumps
it from a background thread. The behaviour is specified in docs/design.md; names, error lines,
settings, SQL, metrics and log events come from the generated
:mod:`points_server.generated.protocol`.
"""

# The repository's VERSION, rendered into the generated protocol module (the package metadata
# carries the same: its build read the file; tests/unit/test_version.py checks both).
from .generated.protocol import VERSION as __version__

__all__ = ["LANGUAGE", "SERVICE", "__version__"]

SERVICE = "python-server"
LANGUAGE = "python"
