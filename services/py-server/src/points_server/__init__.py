"""The Python server of the points mesh.

It owns one row of ``project_db.users``, answers ``REQUEST_LATEST_POINTS`` with that row and bumps
it from a background thread. The behaviour is specified in docs/design.md; names, error lines,
settings, SQL, metrics and log events come from the generated :mod:`points_server.protocol`.
"""

__version__ = "1.0.0"
SERVICE = "python-server"
LANGUAGE = "python"
