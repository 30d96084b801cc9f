# Two commands on a fresh machine with Python 3.11 and pip: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench lint stop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,browser]'
	touch $@

install: $(VENV)/.installed

demo: install  ## start the embedded stack and run the two demo requests
	$(BIN)/python starter.py demo

test: install  ## the whole suite against real servers
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider

bench: install  ## the benchmarks: tables printed, figures in bench/results/*.json
	$(BIN)/python bench/data_plane.py
	$(BIN)/python bench/data_plane_dataset.py
	$(BIN)/python bench/orchestrator.py
	$(BIN)/python bench/single_store.py

lint: install  ## ruff, mypy and the import contracts (the floors, no circles)
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

stop:
	$(BIN)/python starter.py stack down

clean: stop
	rm -rf var
