"""The seed's Python server design, kept only as a benchmark baseline (`--servers seed`).

What the seed report's Figure 7 does: one client at a time (accept, recv, a new database
connection per request, SELECT, reply, close), listen backlog 5. The only changes: settings
from the same environment variables as the real servers, the row from SERVER_USER, and the
process exits on SIGTERM. No updater thread (a benchmark run is shorter than its interval).
Never deploy this: it is here to show what the project's servers replaced.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

import mysql.connector


def main() -> int:
    port = int(os.environ.get("SERVER_PORT", "5002"))
    host = os.environ.get("SERVER_HOST", "127.0.0.1")
    user = os.environ.get("SERVER_USER", "python_user")
    db_args = {
        "host": os.environ.get("DB_HOST", "127.0.0.1"),
        "port": int(os.environ.get("DB_PORT", "3306")),
        "user": os.environ.get("DB_USER", "points_app"),
        "password": os.environ.get("DB_PASS", ""),
        "database": os.environ.get("DB_NAME", "project_db"),
    }
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(5)
    while True:
        conn, _ = s.accept()
        try:
            conn.recv(1024)
            db = mysql.connector.connect(**db_args)
            cursor = db.cursor()
            cursor.execute("SELECT points, datetime_stamp FROM users WHERE user = %s", (user,))
            result = cursor.fetchone()
            points, timestamp = result if result else (0, "N/A")
            # str(): the row's values as the seed printed them (mypy: a column may be bytes)
            response = f"User: {user}, Points: {points!s}, Last Update: {timestamp!s}\n"
            conn.sendall(response.encode())
            cursor.close()
            db.close()
        except (OSError, mysql.connector.Error) as exc:
            print(f"seed server: {exc}", file=sys.stderr, flush=True)
        finally:
            conn.close()


if __name__ == "__main__":
    sys.exit(main())
