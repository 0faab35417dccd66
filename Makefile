# The two set-up commands of the README: `make demo` and `make test`.
# Both create the virtual environment on first use, from requirements.lock.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install

install: $(STAMP)

$(STAMP): requirements.lock requirements.txt setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

demo: $(STAMP)
	$(VENV)/bin/ptjf demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow" tests

# pytest exits 5 when no test is marked slow: that is not a failure.
test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m slow tests; rc=$$?; [ $$rc -eq 5 ] || exit $$rc
