# Two commands for a newcomer: `make test` and `make demo`. Both build the venv from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo install lint typecheck unit integration schemas clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check streams schemas tests
	$(BIN)/ruff format --check streams schemas tests

typecheck: install
	$(BIN)/mypy streams schemas

unit: install
	$(BIN)/pytest tests/unit -q

integration: install
	$(BIN)/pytest tests/integration -q

test: lint typecheck
	$(BIN)/pytest -q -ra

demo: install
	$(BIN)/crm-triggers demo $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS),)

schemas: install
	$(BIN)/python -m schemas.export

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
