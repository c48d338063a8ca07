# The two commands of the README: `make demo` and `make test`; `make docs` builds the
# documentation site alone. Each creates .venv if needed and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# warnings are errors; -E: read every page again, autodoc does not see changed docstrings otherwise
SPHINX := $(PY) -m sphinx -W --keep-going -E -q -b html docs docs/_build/html

.PHONY: demo test docs bench clean

# the package, editable, with the extras $(1); one stamp per set of extras
define install
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(1)]"
	touch $@
endef

$(VENV)/.installed-train: setup.cfg pyproject.toml setup.py
	$(call install,train)

$(VENV)/.installed-docs: setup.cfg pyproject.toml setup.py
	$(call install,train$(COMMA)docs)

$(VENV)/.installed-test: setup.cfg pyproject.toml setup.py
	$(call install,test$(COMMA)bench$(COMMA)dask)

COMMA := ,

demo: $(VENV)/.installed-train
	$(PY) examples/precipitate.py

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check ovito_atomclass tests benchmarks examples docs
	$(PY) -m pytest -q
	$(SPHINX)

docs: $(VENV)/.installed-docs
	$(SPHINX)
	@echo "documentation: docs/_build/html/index.html"

bench: $(VENV)/.installed-test
	$(PY) benchmarks/bench_features.py

clean:
	rm -rf $(VENV) build dist *.egg-info docs/_build
