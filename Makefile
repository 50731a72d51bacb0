# The README's two commands: `make figures` (every notebook headless, figures regenerated) and
# `make test`. Both create .venv when missing: torch==2.13.0 first (a CPU build on this machine;
# a bare `torch` would pull a multi-GB CUDA build), then the project with its dev extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
export PYTHONHASHSEED := 0
# MPLBACKEND=Agg only for the headless targets (test, figures): the Lab's kernel must keep its inline
# backend, or figure cells show text reprs instead of images.
HEADLESS := MPLBACKEND=Agg TQDM_DISABLE=1

# The gallery: `make figures` alone writes figures/ (notebooks run elsewhere write build/figures/ or
# $$FIG_DIR), with the parameters of the committed figures passed explicitly; the notebooks' own
# defaults are the fast ones meant for JupyterLab. Every gallery figure and table reads committed
# runs (02: the pretrained start; 06 by default: results/molecules/eta4), so `make figures` leaves
# `git status` clean on any CPU: a float32 training run on another CPU's kernels differs in its
# fourth digit, which a figure's bytes would show.
GALLERY_PARAMS_02_training := -p COMMITTED ../results/pretrain/1shot/uniform-s0
# 04_scheduler computes (the factors, one ATS step, 30 float32 steps of phi), so its figures' bytes
# depend on the CPU's kernels: they go to build/figures/ and into its HTML copy, not to the gallery.
GALLERY_PARAMS_04_scheduler := -p FIG_DIR $(CURDIR)/build/figures

# `make lab`: JupyterLab on LAB_DIR. Jupyter Server reads JUPYTER_PORT and JUPYTER_TOKEN from the
# environment; LAB_ARGS adds options (e.g. --no-browser). MPLBACKEND is removed, whoever set it, so
# the kernel draws inline. Settings in scripts/lab_overrides.json: autosave off (nothing is
# rewritten unless you save), no news toasts.
LAB_DIR ?= notebooks
LAB_ARGS ?=
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings

.PHONY: venv test figures report lab data data-full gpu-check bench clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: venv
	$(HEADLESS) $(PY) -m pytest -q

define papermill_nb
	@echo "papermill $(1)"
	$(HEADLESS) $(VENV)/bin/papermill --no-progress-bar --execution-timeout 1500 --cwd notebooks -k python3 \
	  $(1) build/$(notdir $(1)) -p FIG_DIR $(CURDIR)/figures $(GALLERY_PARAMS_$(basename $(notdir $(1))))
	$(VENV)/bin/jupyter nbconvert --to html --log-level WARN --output-dir build/notebooks build/$(notdir $(1))

endef

# Each executed notebook stays in build/ (.ipynb) and is converted to build/notebooks/NAME.html: a copy
# with its figures and tables that opens in any browser without a kernel. Build products, not
# committed: their outputs carry timings and progress, which differ on every run and machine.
figures: venv
	mkdir -p build/notebooks figures
	$(foreach nb,$(NOTEBOOKS),$(call papermill_nb,$(nb)))
	$(PY) -m atslib report

# REPRODUCTION.md's results block from the tables the notebooks saved (figures/tables)
report: venv
	$(PY) -m atslib report

lab: venv
	mkdir -p $(LAB_SETTINGS) && cp scripts/lab_overrides.json $(LAB_SETTINGS)/overrides.json
	env -u MPLBACKEND $(VENV)/bin/jupyter lab $(LAB_DIR) $(LAB_ROOT_FLAG) $(LAB_ARGS)

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
