# One place for the commands the README's Quickstart and CI use.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch (small); set TORCH_SPEC="torch" for a CUDA machine.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?= -q

.PHONY: setup setup-dev demo test bench

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

setup: $(PY)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e .

setup-dev: $(PY)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"

# The main job: predict the shipped example scene with the shipped demo model, then vectorize.
demo: setup
	mkdir -p out
	$(VENV)/bin/rsmamba predict examples/scene/ortho.tif --dsm examples/scene/dsm.tif -o out/classes.tif
	$(VENV)/bin/rsmamba vectorize out/classes.tif --classes building --min-area 30m2 --regularize -o out/buildings.gpkg

test: setup-dev
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
