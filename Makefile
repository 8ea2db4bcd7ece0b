# The two commands a newcomer needs: `make demo` and `make test`. Both set up the virtualenv first.
VENV ?= .venv
PYTHON ?= python3

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

.PHONY: install demo test
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/importer-dagster demo

test: $(VENV)/.installed
	$(VENV)/bin/pytest
