# The two commands of the README: `make demo` and `make test`. Each creates .venv if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,bench,dask]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/precipitate.py

test: $(STAMP)
	$(VENV)/bin/ruff check ovito_atomclass tests benchmarks examples
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_features.py

clean:
	rm -rf $(VENV) build *.egg-info
