# Two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUICK ?=

.PHONY: run test lint bench soak setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[gui,test,dev]'
	touch $(STAMP)

# Debian packages the tests need (gnome-keyring, dbus for the real Secret Service).
.ci/.system-deps-ok: .ci/system-deps
	bash .ci/system-deps
	touch $@

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/peerbase --help

test: $(STAMP) .ci/.system-deps-ok
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check engine gui tests bench
	$(BIN)/mypy

# The fault scenarios at full size (100,000 docs, many cuts): minutes, not seconds.
soak: $(STAMP) .ci/.system-deps-ok
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest tests/faults --soak --timeout=1800

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
