"""The Python server of the points mesh.

It owns one row of ``project_db.users``, answers ``REQUEST_LATEST_POINTS`` with that row and bumps
it from a background thread. The behaviour is specified in docs/design.md; names, error lines,
settings, SQL, metrics and log events come from the generated :mod:`points_server.protocol`.
"""

import importlib.metadata

try:
    # The installed package's version: its build read the repository's VERSION file.
    __version__ = importlib.metadata.version("points-server")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0-dev"

SERVICE = "python-server"
LANGUAGE = "python"
