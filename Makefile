# The two commands a newcomer needs: `make demo` and `make test`. Both set up the virtualenv first.
VENV ?= .venv
PYTHON ?= python3

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

# The browser test drives Debian's Chromium (the apt packages chromium and chromium-driver).
CHROMIUM ?= /usr/bin/chromium

.PHONY: install demo test browser
install: $(VENV)/.installed

browser:
	@test -x $(CHROMIUM) || { echo "Installing Debian's Chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

demo: $(VENV)/.installed
	$(VENV)/bin/importer-dagster demo

# Dagster's own habit first: its commands must work from this folder with nothing set.
test: $(VENV)/.installed browser
	env -i PATH="$(CURDIR)/$(VENV)/bin:/usr/bin:/bin" HOME=/tmp $(VENV)/bin/dagster definitions validate -m importer_dagster.definitions
	$(VENV)/bin/pytest
