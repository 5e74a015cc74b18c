"""Client of the points mesh servers (docs/design.md, section 8).

`python-client` / `python -m points_client` asks a server for its latest points and prints the
reply line; it behaves like the C client (same settings, messages and exit codes).
"""

__version__ = "1.0.0"
