# kernelpad: `make run` sets everything up and starts the server; `make test` sets up and tests.
# Every target is idempotent: a second run only redoes what changed.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.kernelpad-installed
FRONTEND := kernelpad/web/frontend
VENDOR := kernelpad/web/static/vendor
ASSETS := $(VENDOR)/.installed
# The browser UI, bundled by esbuild; rebuilt whenever a source changes.
BUNDLE := kernelpad/web/static/dist/manifest.json
BUNDLE_SOURCES := $(FRONTEND)/build.mjs $(wildcard $(FRONTEND)/src/*)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

export JUPYTER_PLATFORM_DIRS := 1

.PHONY: setup run test bench load screenshots lint system-deps clean test-enterprise-gateway

setup: $(INSTALLED) $(ASSETS) $(BUNDLE)

# Debian packages kernelpad needs, installed only where missing: Node.js (the browser UI's
# build, the docs' viewers), a JDK (the Java kernel), clang-repl (the C++ kernel), a C compiler
# (the keepers' watch in C: kernelpad/kernels/keeper_watch.c), bubblewrap
# (the kernels' sandbox; 0.8 or later disables user namespaces in it) and libseccomp (its
# seccomp filter), Chromium (the browser the UI tests drive; Playwright's own download cannot
# be used here), PostgreSQL (the tests start a throw-away server of it), nginx (the tests put
# several kernelpad processes behind it).
DEBIAN_PACKAGES := $(if $(shell command -v npm),,nodejs npm) \
	$(if $(shell command -v javac),,openjdk-17-jdk-headless) \
	$(if $(wildcard /usr/lib/llvm-19/bin/clang-repl),,clang-tools-19) \
	$(if $(shell command -v cc),,gcc libc6-dev) \
	$(if $(shell command -v bwrap),,bubblewrap) \
	$(if $(wildcard /usr/lib/*/libseccomp.so.2 /lib/*/libseccomp.so.2),,libseccomp2) \
	$(if $(wildcard /usr/bin/chromium),,chromium) \
	$(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql) \
	$(if $(wildcard /usr/sbin/nginx),,nginx)
# The unprivileged user sandboxed kernels run as (KERNELPAD_SANDBOX_USER).
SANDBOX_USER := kernelpad-kernel

system-deps:
	@if [ -n "$(strip $(DEBIAN_PACKAGES))" ]; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $(DEBIAN_PACKAGES); \
	fi
	@id -u $(SANDBOX_USER) >/dev/null 2>&1 || $(SUDO) useradd --system --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin $(SANDBOX_USER)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# kernelpad and its kernels; their kernelspecs land in the venv's share/jupyter. Deno's kernel
# runs a copy of the venv's deno (install.lean_deno): a newer deno is copied again.
$(INSTALLED): setup.cfg pyproject.toml kernelpad/kernels/install.py \
		$(wildcard kernelpad/kernels/keeper_*.[ch]) $(wildcard $(BIN)/deno) \
		kernelpad/kernels/jjava/jvm.py kernelpad/kernels/jjava/ShellChannel.java \
		| $(BIN)/python system-deps
	$(BIN)/pip install --quiet -e '.[kernels,test,bench]'
	$(BIN)/python -m kernelpad.kernels.install
	touch $@

# The API docs' viewers (Swagger UI, ReDoc), from npm, served locally.
$(ASSETS): $(FRONTEND)/package.json $(FRONTEND)/package-lock.json | system-deps
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)/swagger-ui $(VENDOR)/redoc
	cp $(FRONTEND)/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
	   $(FRONTEND)/node_modules/swagger-ui-dist/swagger-ui.css $(VENDOR)/swagger-ui/
	cp $(FRONTEND)/node_modules/redoc/bundles/redoc.standalone.js $(VENDOR)/redoc/
	touch $@

$(BUNDLE): $(BUNDLE_SOURCES) $(ASSETS)
	cd $(FRONTEND) && node build.mjs

# JupyterHub's proxy, for examples/jupyterhub_config.py and the tests that start a real Hub.
HUB_PROXY := examples/node_modules/.bin/configurable-http-proxy
$(HUB_PROXY): examples/package.json examples/package-lock.json | system-deps
	cd examples && npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	$(BIN)/kernelpad --data-dir .kernelpad

# nbgrader, in a virtualenv of its own (it brings JupyterLab and Notebook, which kernelpad does
# not need), for the test that grades the same submissions with nbgrader and with kernelpad.
NBGRADER_VENV := .venv-nbgrader
NBGRADER := $(NBGRADER_VENV)/bin/nbgrader
$(NBGRADER):
	$(PYTHON) -m venv $(NBGRADER_VENV)
	$(NBGRADER_VENV)/bin/pip install --quiet 'nbgrader==0.9.6'

test: setup $(HUB_PROXY) $(NBGRADER)
	$(BIN)/pytest

# JupyterLab's collaboration server, which bench/fanout.py measures kernelpad against, lives in
# a virtualenv of its own (its pins are not kernelpad's), made once and remade when the pins in
# bench/harness.py change.
PEERS_VENV := bench/.peers-venv

bench: setup
	$(BIN)/python bench/fanout.py --setup-peers
	$(BIN)/python bench/execute_latency.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/gateway_latency.py
	$(BIN)/python bench/completion.py
	$(BIN)/python bench/kernel_memory.py
	$(BIN)/python bench/edit_cost.py

# Capacity and soak: 1, 25, 50, 100 and 150 interviews at once, a minute of load each (about
# 7 minutes); writes bench/results/load.json and load.png. Then the same runs on bare
# kernels, no kernelpad (about 6 minutes): bench/results/load_floor.json. Then the same
# interviews, typing included, through the least server they need (about 6 minutes):
# bench/results/load_server_floor.json; and through the least server that stores what it
# relays as kernelpad does (about 6 minutes): bench/results/load_stored_floor.json.
load: setup
	$(BIN)/python bench/load.py
	$(BIN)/python bench/load_floor.py
	$(BIN)/python bench/load_floor.py --through-server --output load_server_floor
	$(BIN)/python bench/load_floor.py --through-server --stored --output load_stored_floor

# The README's pictures of the browser UI (docs/images/*.png), taken in Chromium from a real
# server and real kernels (docs/screenshots.py; about 15 seconds).
screenshots: setup
	$(BIN)/python docs/screenshots.py

# kernelpad on a Jupyter Enterprise Gateway, which needs a virtualenv of its own (it pins
# jupyter-client<7). Not part of `make test`.
EG_VENV := .venv-eg
test-enterprise-gateway: setup
	test -x $(EG_VENV)/bin/jupyter-enterprisegateway || ( $(PYTHON) -m venv $(EG_VENV) && \
		$(EG_VENV)/bin/pip install --quiet 'jupyter_enterprise_gateway>=3.2,<4' ipykernel )
	KERNELPAD_EG_VENV=$(EG_VENV) $(BIN)/pytest tests/kernel_gateway/enterprise_gateway.py

lint: setup
	$(BIN)/pip install --quiet -e '.[lint]'
	$(BIN)/ruff check kernelpad tests bench examples docs
	$(BIN)/ruff format --check kernelpad tests bench examples docs
	$(BIN)/mypy kernelpad tests bench examples

clean:
	rm -rf $(VENV) $(EG_VENV) $(NBGRADER_VENV) $(PEERS_VENV) $(VENDOR) kernelpad/web/static/dist $(FRONTEND)/node_modules \
		examples/node_modules examples/kernelpad-data
