# pymlm: two commands on a fresh machine (Python >= 3.10 with venv and pip).
#   make demo   set up .venv, install pymlm, fit lme4's sleepstudy model and print it
#   make test   set up .venv with the test extras and run the test suite (it builds the site,
#               executes the vignettes and checks the site in Chromium: /usr/bin/chromium)
#   make docs   build the documentation site into docs/_build/html (warnings are errors)
#   make docs-check   build the site, then check it in headless Chromium
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast venv bench docs docs-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# the test extra includes the docs extra: the suite builds and checks the site
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed $(VENV)/.installed-docs

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/pymlm fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow"

docs: $(VENV)/.installed-docs
	$(BIN)/python docs/build.py

# the checks of tests/docs on the site just built (PYMLM_DOCS_SITE: no second build)
docs-check: docs
	PYMLM_DOCS_SITE=docs/_build/html $(BIN)/python -m pytest -q tests/docs

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	rm -rf docs/_build docs/api docs/plots docs/vignettes
