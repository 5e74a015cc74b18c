"""Render docker-compose.yml from roster.yaml (and VERSION, protocol.toml defaults).

One of pointsmesh.render's targets, so `make render` writes the file and
`python -m pointsmesh.render --check` reports drift. Everything that is the same for several
services is written once as an `x-*` extension field and merged with YAML anchors; the per-member
services only name their row, port and target.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import ROOT
from .spec import Member, Protocol, load_protocol, load_roster

COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_TLS_FILE = ROOT / "docker-compose.tls.yml"
# Where servers and clients find the TLS files (the chart uses the same directory).
TLS_DIR = "/run/secrets/points-tls"
# The images' user (their Dockerfiles: USER 10001:10001), which must be able to read the key.
IMAGE_UID = 10001

# Images: <IMAGE_PREFIX>/<name>:<IMAGE_TAG>; the Dockerfile building each.
IMAGES = {
    "c-server": "services/c-server/Dockerfile",
    "python-server": "services/py-server/Dockerfile",
    "c-client": "clients/c-client/Dockerfile",
    "python-client": "clients/py-client/Dockerfile",
}


def posix_tz(offset: str) -> str:
    """'+08:00' -> '<+08>-8', the POSIX TZ string of a fixed UTC offset (sign inverted)."""
    sign, hh, mm = offset[0], offset[1:3], offset[4:6]
    if sign not in "+-" or offset[3] != ":" or not (hh + mm).isdigit():
        raise ValueError(f"not a +HH:MM offset: {offset!r}")
    posix_sign = "-" if sign == "+" else ""
    hours = str(int(hh))
    name = f"{sign}{hh}" if mm == "00" else f"{sign}{hh}{mm}"
    return f"<{name}>{posix_sign}{hours}" + (f":{mm}" if mm != "00" else "")


def _q(s: str) -> str:
    """A double-quoted YAML scalar (the values here never hold a quote or backslash)."""
    if '"' in s or "\\" in s:
        raise ValueError(f"unexpected character in {s!r}")
    return f'"{s}"'


def _required(env: str) -> str:
    """A variable Compose refuses to run without (it has no safe default)."""
    return "${" + env + ":?set " + env + " in .env (copy .env.example)}"


def render_compose(members: tuple[Member, ...], p: Protocol, version: str) -> str:
    tz = p.default("DB_TIMEZONE")
    first = members[0].name
    out: list[str] = []
    w = out.append
    w("# Generated from roster.yaml by `make render` (render_compose.py). Do not edit.")
    w("#")
    w("# The seed system: one database, a C and a Python server per roster member, and one client")
    w("# per server, finding each other by service name.")
    w("#   cp .env.example .env      # then set the two passwords")
    w("#   docker compose up --build")
    w("# Settings come from .env (see .env.example). Shared parts are written once below as x-*")
    w("# extension fields and merged into the services with YAML anchors; the images are built by")
    w(f"# the services of the first roster member ({first}) and shared by the others.")
    w("name: pointsmesh")
    w("")
    w("x-build-args: &build-args")
    w("  BASE_IMAGE: ${BASE_IMAGE:-debian:bookworm-slim}")
    w(f"  VERSION: {_q(version)}")
    w("")
    w("# Every server and client: an init process as PID 1 (it forwards signals, so a server")
    w("# that dies on one is restarted), read-only root file system, no capabilities, no")
    w("# privilege gain.")
    w("x-hardening: &hardening")
    w("  init: true")
    w("  read_only: true")
    w("  cap_drop: [ALL]")
    w('  security_opt: ["no-new-privileges:true"]')
    w("  tmpfs: [/tmp]")
    w("")
    w("x-server-env: &server-env")
    w("  DB_HOST: database")
    w('  DB_PORT: "3306"')
    w(f"  DB_NAME: {p.default('DB_NAME')}")
    w(f"  DB_USER: ${{APP_DB_USER:-{p.default('DB_USER')}}}")
    w(f"  DB_PASS: {_required('APP_DB_PASSWORD')}")
    w(f"  DB_TIMEZONE: {_q('${DB_TIMEZONE:-' + tz + '}')}")
    w(f"  UPDATE_INTERVAL: {_q('${UPDATE_INTERVAL:-' + p.default('UPDATE_INTERVAL') + '}')}")
    w(f"  HEALTH_PORT: {_q(p.default('HEALTH_PORT'))}")
    w(f"  LOG_LEVEL: ${{LOG_LEVEL:-{p.default('LOG_LEVEL')}}}")
    w("")
    w("# A server starts once the database is healthy, is healthy itself when /readyz answers 200")
    w("# (the image's HEALTHCHECK), and is restarted when it dies.")
    w("x-server: &server")
    w("  <<: *hardening")
    w("  restart: unless-stopped")
    w("  stop_grace_period: 15s")
    w("  depends_on:")
    w("    database:")
    w("      condition: service_healthy")
    w("  healthcheck:")
    w("    interval: 3s")
    w("    timeout: 3s")
    w("    retries: 3")
    w("    start_period: 30s")
    w("")
    w("x-client-env: &client-env")
    for env in ("CLIENT_RETRIES", "CLIENT_RETRY_DELAY", "CLIENT_RETRY_MAX_DELAY", "CLIENT_TIMEOUT"):
        w(f"  {env}: {_q('${' + env + ':-' + p.default(env) + '}')}")
    w("")
    w("# A client asks its server once, prints the reply line and exits (0 on success).")
    w("x-client: &client")
    w("  <<: *hardening")
    w('  restart: "no"')
    w("")
    w("# Each image is built from this checkout by the first member's service (x-<image>-build,")
    w("# pull_policy: build); the other services use it as built and never try to pull it from a")
    w("# registry (x-<image>-image).")
    for name, dockerfile in IMAGES.items():
        image = f"${{IMAGE_PREFIX:-pointsmesh}}/{name}:${{IMAGE_TAG:-latest}}"
        w(f"x-{name}-image: &{name}-image")
        w(f"  image: {image}")
        w("  pull_policy: never")
        w(f"x-{name}-build: &{name}-build")
        w(f"  image: {image}")
        w("  pull_policy: build")
        w("  build:")
        w("    context: .")
        w(f"    dockerfile: {dockerfile}")
        w("    args: *build-args")
        w("")
    w("services:")
    w("  database:")
    w("    image: ${DB_IMAGE:-mysql:8.4}")
    w("    restart: unless-stopped")
    w(f"    command: [{_q('--default-time-zone=${DB_TIMEZONE:-' + tz + '}')}]")
    w("    environment:")
    w(f"      MYSQL_ROOT_PASSWORD: {_required('MYSQL_ROOT_PASSWORD')}")
    w(f"      APP_DB_USER: ${{APP_DB_USER:-{p.default('DB_USER')}}}")
    w(f"      APP_DB_PASSWORD: {_required('APP_DB_PASSWORD')}")
    w("      # The database's own clock in DB_TIMEZONE (POSIX form, sign inverted), so that the")
    w("      # seeded rows carry that wall time too.")
    w(f"      TZ: {_q('${DB_TZ:-' + posix_tz(tz) + '}')}")
    w("    volumes:")
    w("      - ./sql:/docker-entrypoint-initdb.d:ro")
    w("      - db-data:/var/lib/mysql")
    w("    healthcheck:")
    w("      # TCP, so it fails while the image's first-start initialisation runs socket-only.")
    w("      test:")
    w("        - CMD-SHELL")
    w(
        "        - mysqladmin ping -h 127.0.0.1 --silent 2>/dev/null"
        " || mariadb-admin ping -h 127.0.0.1 --silent"
    )
    w("      interval: 2s")
    w("      timeout: 5s")
    w("      retries: 15")
    w("      start_period: 120s")
    for m in members:
        build = m.name == first
        for lang, server, client, row, port in (
            ("c", m.c_server, m.c_client, m.c_row, m.c_port),
            ("python", m.python_server, m.python_client, m.python_row, m.python_port),
        ):
            kind = "build" if build else "image"
            w("")
            w(f"  {server}:")
            w(f"    <<: [*server, *{lang}-server-{kind}]")
            w("    environment:")
            w("      <<: *server-env")
            w(f"      SERVER_USER: {row}")
            w(f'      SERVER_PORT: "{port}"')
            w("    ports:")
            w(f'      - "${{PUBLISH_ADDR:-127.0.0.1}}:{port}:{port}"')
            w("")
            w(f"  {client}:")
            w(f"    <<: [*client, *{lang}-client-{kind}]")
            w("    environment:")
            w("      <<: *client-env")
            w(f"      TARGET_HOST: {server}")
            w(f'      TARGET_PORT: "{port}"')
            w("    depends_on:")
            w(f"      {server}:")
            w("        condition: service_healthy")
    w("")
    w("volumes:")
    w("  db-data:")
    w("")
    return "\n".join(out)


def render_compose_tls(members: tuple[Member, ...]) -> str:
    """docker-compose.tls.yml: TLS on every protocol port (docs/design.md section 9)."""
    out: list[str] = []
    w = out.append
    w("# Generated from roster.yaml by `make render` (render_compose.py). Do not edit.")
    w("#")
    w("# TLS on every protocol port, over docker-compose.yml:")
    w("#   make certs        # out/tls: a local CA, the servers' certificate for every service")
    w("#                     # name below, never committed")
    w("#   docker compose -f docker-compose.yml -f docker-compose.tls.yml up --build")
    w("# The servers present out/tls/server.crt; every client verifies it against ca.crt for")
    w("# the server's service name and never falls back to plaintext. TLS_DIR=<dir> uses")
    w("# certificates from elsewhere (server.crt, server.key, ca.crt).")
    w("services:")
    w("  # Copies the certificates into a volume, the key readable by the images' user only")
    w("  # (a bind-mounted key keeps the host's owner, whom the containers cannot read as), and")
    w("  # ca.crt alone into another: the clients mount only that one, never the servers' key.")
    w("  tls-init:")
    w("    image: ${IMAGE_PREFIX:-pointsmesh}/c-client:${IMAGE_TAG:-latest}")
    w("    pull_policy: never")
    w('    user: "0:0"')
    w("    entrypoint:")
    w("      - sh")
    w("      - -ec")
    w("      - >-")
    w("        cp /src/server.crt /src/server.key /src/ca.crt /tls/ &&")
    w(f"        chown {IMAGE_UID}:{IMAGE_UID} /tls/server.key && chmod 0400 /tls/server.key &&")
    w("        chmod 0444 /tls/server.crt /tls/ca.crt &&")
    w("        cp /src/ca.crt /tls-ca/ && chmod 0444 /tls-ca/ca.crt")
    w("    read_only: true")
    w("    cap_drop: [ALL]")
    w("    cap_add: [CHOWN, DAC_OVERRIDE, FOWNER]")
    w('    security_opt: ["no-new-privileges:true"]')
    w('    restart: "no"')
    w("    volumes:")
    w("      - ${TLS_DIR:-./out/tls}:/src:ro")
    w("      - tls:/tls")
    w("      - tls-ca:/tls-ca")
    for m in members:
        for server, client in ((m.c_server, m.c_client), (m.python_server, m.python_client)):
            w("")
            w(f"  {server}:")
            w("    environment:")
            w(f"      TLS_CERT_FILE: {TLS_DIR}/server.crt")
            w(f"      TLS_KEY_FILE: {TLS_DIR}/server.key")
            w("    volumes:")
            w(f"      - tls:{TLS_DIR}:ro")
            w("    depends_on:")
            w("      tls-init:")
            w("        condition: service_completed_successfully")
            w("")
            w(f"  {client}:")
            w("    environment:")
            w(f"      TLS_CA_FILE: {TLS_DIR}/ca.crt")
            w("    volumes:")
            w(f"      - tls-ca:{TLS_DIR}:ro")
    w("")
    w("volumes:")
    w("  tls:")
    w("  tls-ca:")
    w("")
    return "\n".join(out)


def compose_targets() -> dict[Path, Callable[[], str]]:
    version = (ROOT / "VERSION").read_text().strip()
    p = load_protocol()
    members = load_roster()
    return {COMPOSE_FILE: lambda: render_compose(members, p, version),
            COMPOSE_TLS_FILE: lambda: render_compose_tls(members)}
