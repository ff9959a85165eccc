# Every target installs what it needs into .venv first, so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TOOLS := .venv-tools
TOOLS_INSTALLED := $(TOOLS)/.installed
# The stack-backed tests mostly wait on the workflow's Waits, so more workers than cores pay.
TEST_WORKERS ?= 4

# `make demo PROMPT="..." SIZE='512*512' SEED=3 OUT=fox.jpg` reaches the demo as environment
# (without SEED the demo picks one at random and prints it).
export PROMPT SIZE SEED OUT PORT API_KEY NOVITA_BASE_URL NOVITA_API_KEY FRESH LOCAL_STATE_DIR

.PHONY: install run demo test unit lint check bench reliability openapi screenshot format clean

# The install also downloads the shared layer's requirements as Lambda's platform takes them, so
# building the layer (the unit tests, the bench) needs no network.
$(INSTALLED): requirements-dev.txt layers/shared/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip download --quiet --dest $(VENV)/layer-wheels --requirement layers/shared/requirements.txt \
		--platform manylinux2014_aarch64 --implementation cp --python-version 3.13 --only-binary=:all:
	touch $@

install: $(INSTALLED)

run: $(INSTALLED)  ## the local stack on http://127.0.0.1:$${PORT:-3000}
	$(BIN)/python -m local run

demo: $(INSTALLED)  ## one image end to end, saved under out/
	$(BIN)/python -m local demo

$(TOOLS_INSTALLED): requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r requirements-tools.txt
	touch $@

# loadgroup: the browser tests share one worker (one Chromium) and run beside the others.
test: $(INSTALLED) lint check unit  ## lint, security scans of the template and the whole test suite
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup tests/integration tests/reliability tests/browser

unit: $(INSTALLED)  ## the unit tests alone: no sockets, no stack, well under 30 s
	$(BIN)/python -m pytest -n 2 tests/unit

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml

check: $(INSTALLED) $(TOOLS_INSTALLED)  ## serverless rules and checkov on the template: 0 findings
	$(BIN)/cfn-lint --append-rules cfn_lint_serverless.rules -- template.yaml
	$(TOOLS)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

bench: $(INSTALLED)  ## service vs Job Poller baseline -> bench/results.json, docs/performance.md
	$(BIN)/python -m bench

reliability: $(INSTALLED)  ## fault matrix, abuse battery and load run -> docs/reliability.md
	$(BIN)/python -m reliability

openapi: $(INSTALLED)  ## regenerate openapi.json from the API function's models
	$(BIN)/python -m local openapi

screenshot: $(INSTALLED)  ## the README's picture of the page -> docs/page.png (needs Chromium)
	$(BIN)/python -m local.screenshot

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .aws-sam out
