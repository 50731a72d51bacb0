# The README's two commands: `make figures` (every notebook headless, figures regenerated) and
# `make test`. Both create .venv when missing: torch==2.13.0 first (a CPU build on this machine;
# a bare `torch` would pull a multi-GB CUDA build), then the project with its dev extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: venv test figures lab data data-full gpu-check bench clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: venv
	TQDM_DISABLE=1 $(PY) -m pytest -q

figures: venv
	mkdir -p build figures
	@set -e; for nb in $(NOTEBOOKS); do \
	  echo "papermill $$nb"; \
	  TQDM_DISABLE=1 $(VENV)/bin/papermill --no-progress-bar --execution-timeout 1500 --cwd notebooks -k python3 \
	    "$$nb" "build/$$(basename $$nb)"; \
	done

lab: venv
	$(VENV)/bin/jupyter lab notebooks

data:
	$(PY) data/build_quickdraw.py

data-full:
	$(PY) data/build_quickdraw.py --classes all

bench: venv
	$(PY) -m atslib bench --json build/bench.json

# On a CUDA machine (system python3 with torch, no Jupyter): tests, benchmark, a short ATS run.
gpu-check:
	PYTHONPATH=$(CURDIR) python3 scripts/gpu_check.py --out $${OUT:-build/gpu-check}

clean:
	rm -rf build .pytest_cache
