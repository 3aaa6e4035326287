# Everything a fresh Debian 12 / Python 3.11 machine needs goes through these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FIXTURE_DEBS := clang lld wasi-libc libclang-rt-dev-wasm32 wabt

.PHONY: setup system-packages npm test lint fixtures bench fuzz demo clean

# The virtual environment, rebuilt when the project's dependencies change.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "virtwasi needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: system-packages $(STAMP)

# The Debian packages that build the wasm fixtures (only `make fixtures` needs them).
system-packages:
	@missing=$$(for p in $(FIXTURE_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
		echo "missing Debian packages: $$missing"; \
		echo "run: sudo apt-get install -y $$missing"; exit 1; \
	fi

# npm fetches the component tests' preview 1 adapter (jco's) at test time; Debian's npm
# when the machine has no Node.js of its own.
npm:
	@if command -v npm >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing npm"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; \
	else \
		echo "missing: npm (the component tests fetch jco's adapter with it)"; \
		echo "run: sudo apt-get install -y npm"; exit 1; \
	fi

test: $(STAMP) npm
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check virtwasi scenarios tests adapters benchmarks
	$(BIN)/mypy

fixtures: system-packages $(STAMP)
	$(MAKE) -C tests/fixtures

bench: $(STAMP)
	$(BIN)/python benchmarks/world_calls.py BENCHMARKS.md
	$(BIN)/python benchmarks/wasi_calls.py BENCHMARKS.md
	$(BIN)/python benchmarks/layers.py BENCHMARKS.md
	$(BIN)/python benchmarks/real_program.py BENCHMARKS.md
	$(BIN)/python benchmarks/startup.py BENCHMARKS.md
	$(BIN)/python benchmarks/interrupts.py BENCHMARKS.md
	$(BIN)/python benchmarks/growth.py BENCHMARKS.md
	$(BIN)/python benchmarks/object_store.py BENCHMARKS.md
	$(BIN)/python benchmarks/canonical_abi.py BENCHMARKS.md
	$(BIN)/python benchmarks/component_calls.py BENCHMARKS.md
	$(BIN)/python benchmarks/components.py BENCHMARKS.md
	$(BIN)/python benchmarks/batch.py BENCHMARKS.md

# Long lockstep fuzzing against wasmtime's built-in WASI: figures per mount and kind.
SEEDS ?= 1-8
CALLS ?= 2500
MOUNTS ?= memory,hostdir,native
fuzz: $(STAMP)
	cd tests && PYTHONPATH=.. $(abspath $(BIN))/python fuzzkit.py --seeds $(SEEDS) --calls $(CALLS) \
		--mounts $(MOUNTS)

# The main job: a real wasm program on the in-memory default, then the demonstration.
demo: setup
	$(BIN)/virtwasi run scenarios/programs/fileops.wasm
	$(BIN)/virtwasi scenario run two-clients
	$(BIN)/virtwasi scenario run forging
	$(BIN)/virtwasi scenario run client-dies

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
