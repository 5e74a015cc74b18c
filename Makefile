# Single entry point. `make setup` once, then `make demo` / `make test` / `make bench`.
# Layers: unit + conformance + integration (`make test`), containers (`make test-containers`),
# cluster smoke (`make test-cluster`), chart e2e (`make test-e2e`); `make ci` runs them all, as
# .ci/run does.

VENV   ?= .venv
PYTHON ?= $(VENV)/bin/python
PYTEST ?= $(PYTHON) -m pytest
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: help setup build render check-render lint test test-mysql test-c-units demo bench bench-abuse bench-k8s fuzz certs \
        test-containers cluster cluster-delete test-cluster test-e2e k8s-demo ci clean

help:
	@echo "make setup            install prerequisites (apt-get when root), .venv, build C"
	@echo "make demo             private database + all six servers + all six clients"
	@echo "make test             lint, render drift check, unit, chart, conformance (plain, TLS), integration, fuzz (5 s each)"
	@echo "make test-mysql       conformance + integration against Oracle MySQL (root once: install)"
	@echo "make bench            load-test each server against a no-database reference"
	@echo "make bench-abuse      each server under connection floods from one address (127.0.0.2)"
	@echo "make bench-k8s        one release of 40, 100 and 200 members on the local cluster, measured"
	@echo "make fuzz             every fuzz target for FUZZ_SECONDS (120) each; grows fuzz/corpus"
	@echo "make render           re-render files derived from protocol.toml and roster.yaml"
	@echo "make certs            a local CA and TLS certificates for the roster (out/tls)"
	@echo "make test-containers  images + docker compose (needs a Docker engine)"
	@echo "make test-cluster     kind cluster smoke test (needs a Docker engine)"
	@echo "make test-e2e         the Helm chart and k8s/ on a cluster: pytest tests/e2e"
	@echo "make k8s-demo         the Helm chart on a cluster (current context, else kind), clients twice"

setup:
	tools/setup.sh

# The C server in three builds (release, ASan+UBSan, ThreadSanitizer: server kinds c, c-asan and
# c-tsan in the tests), the C client in two.
build:
	$(MAKE) -C services/c-server all asan tsan
	$(MAKE) -C clients/c-client all asan

render:
	$(PYTHON) -m pointsmesh.render

check-render:
	$(PYTHON) -m pointsmesh.render --check

# One line per linter.
lint: check-render
	$(PYTHON) -m ruff check --output-format concise .
	$(PYTHON) -m mypy
	$(PYTHON) -m pointsmesh.lint_shell

# Each component's own tests live beside it; tests/ holds the cross-component suites.
UNIT_TESTS = tests/unit services/c-server/tests services/py-server/tests clients/py-client/tests

# The conformance suite twice: plaintext, then every server over TLS (POINTS_MESH_TLS=1).
test: build lint
	$(PYTEST) $(UNIT_TESTS) tests/chart tests/conformance tests/integration
	POINTS_MESH_TLS=1 $(PYTEST) tests/conformance
	$(PYTHON) -m pointsmesh.fuzz --seconds $(FUZZ_CI_SECONDS)

# Every fuzz target (fuzz/: libFuzzer for C, atheris for Python) over its regression inputs, then
# fuzzing: FUZZ_CI_SECONDS each in `make test`, FUZZ_SECONDS each here, whose new corpus inputs
# are added to fuzz/corpus/ (commit them).
FUZZ_CI_SECONDS ?= 5
FUZZ_SECONDS ?= 120
fuzz: build
	$(PYTHON) -m pointsmesh.fuzz --seconds $(FUZZ_SECONDS) --merge

# The conformance and integration suites against Oracle MySQL instead of MariaDB: the dev
# database's MySQL flavour (pointsmesh.devdb), with the C, ASan and Python builds (TSan's
# races do not depend on the database: `make test` runs it). tools/install-mysql.sh builds MySQL's Debian root
# once (as root; cached outside the checkout), then only checks it.
test-mysql: build
	tools/install-mysql.sh $(VENV)
	POINTS_MESH_DB_FLAVOUR=mysql POINTS_MESH_SERVER_KINDS="c c-asan python" \
		$(PYTEST) tests/conformance tests/integration

demo: build
	$(PYTHON) -m pointsmesh.demo

# BENCH_ARGS e.g. "--generator python", "--rounds 3" or "--server-root ../before" (see
# `python -m pointsbench --help`).
# TLS for Compose (docs/design.md section 9): a local CA, the servers' certificate for the
# roster's service names, a client certificate; nothing secret is committed (out/ is ignored).
certs:
	$(PYTHON) -m pointsmesh.certs --out out/tls

bench: build
	$(PYTHON) -m pointsbench $(BENCH_ARGS)

# A well-behaved client's answers while one address floods each server (design.md section
# 10; `python -m pointsbench.abuse --help`).
bench-abuse: build
	$(PYTHON) -m pointsbench.abuse $(BENCH_ARGS)

# A class-sized roster on the cluster (`python -m pointsbench.k8s_scale --help`); e.g.
# BENCH_ARGS="--sizes 40".
bench-k8s:
	ci/docker/start-dockerd.sh
	$(PYTHON) -m pointsbench.k8s_scale $(BENCH_ARGS)

test-containers:
	ci/docker/start-dockerd.sh
	$(PYTEST) tests/containers

cluster:
	ci/kind-airgap/cluster.sh up

cluster-delete:
	ci/kind-airgap/cluster.sh down

# The cluster counterpart of `make demo`; K8S_DEMO_ARGS e.g. "--uninstall" or
# "--image-registry registry.example.com/team" (see `python -m pointsmesh.k8sdemo --help`).
k8s-demo:
	$(PYTHON) -m pointsmesh.k8sdemo $(K8S_DEMO_ARGS)

test-cluster:
	ci/docker/start-dockerd.sh
	$(PYTEST) tests/cluster

# The current kube context if one answers, else the project's kind cluster (POINTS_MESH_CLUSTER
# =kind|current forces the choice); images are built, loaded (kind) or pushed
# (POINTS_MESH_IMAGE_REGISTRY).
test-e2e:
	ci/docker/start-dockerd.sh
	$(PYTEST) tests/e2e

ci: setup test test-containers test-cluster test-e2e

clean:
	$(MAKE) -C services/c-server clean
	$(MAKE) -C clients/c-client clean
	$(MAKE) -C fuzz clean
