# The README's two commands: `make demo` and `make test`. Each creates .venv and installs what it
# needs on first use (again whenever pyproject.toml changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test test-slow bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Runtime only: what a Raspberry Pi gets. Never TensorFlow.
$(VENV)/.runtime-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

# Runtime + training + test tools.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[train,test,monitor,lsl,cluster]'
	touch $@ $(VENV)/.runtime-installed

install: $(VENV)/.runtime-installed
install-dev: $(VENV)/.dev-installed

demo: $(VENV)/.runtime-installed
	$(BIN)/python -m stream.tools.demo

# pytest exits 5 when it collects nothing; that is not a failure of the code.
test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -p no:cacheprovider; status=$$?; if [ $$status -eq 5 ]; then exit 0; else exit $$status; fi

test-slow: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow --run-slow; status=$$?; if [ $$status -eq 5 ]; then exit 0; else exit $$status; fi

bench: $(VENV)/.dev-installed
	$(BIN)/python -m stream.tools.bench

clean:
	rm -rf $(VENV) build *.egg-info
