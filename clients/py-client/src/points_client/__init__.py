"""Client of the points mesh servers (docs/design.md, section 8).

`python-client` / `python -m points_client` asks a server for its latest points and prints the
reply line; it behaves like the C client (same settings, messages and exit codes).
"""

import importlib.metadata

try:
    # The installed package's version: its build read the repository's VERSION file.
    __version__ = importlib.metadata.version("points-client")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0-dev"
