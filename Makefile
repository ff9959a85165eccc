# Every target installs what it needs into .venv first, so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# `make demo PROMPT="..." SIZE=512*512 SEED=3 OUT=fox.jpg` reaches the demo as environment.
export PROMPT SIZE SEED OUT PORT API_KEY NOVITA_BASE_URL NOVITA_API_KEY

.PHONY: install run demo test lint format clean

$(INSTALLED): requirements-dev.txt layers/shared/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(INSTALLED)

run: $(INSTALLED)  ## the local stack on http://127.0.0.1:$${PORT:-3000}
	$(BIN)/python -m local run

demo: $(INSTALLED)  ## one image end to end, saved under out/
	$(BIN)/python -m local demo

test: $(INSTALLED) lint  ## lint, template checks and the whole test suite
	$(BIN)/python -m pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .aws-sam out
