# Two commands on a fresh machine: `make demo` and `make test`.
# TORCH names the PyTorch requirement installed into the venv when it has none; a GPU user names their own build,
# e.g. make demo TORCH="torch==2.5.1 --index-url <your wheel index>". An existing PyTorch is never replaced.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ladarts-installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.ladarts-test: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ladarts demo --out demo-out

test: $(VENV)/.ladarts-test
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo-out
