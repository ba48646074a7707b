# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv with the package installed from setup.cfg (once; redone when
# setup.cfg changes) and makes sure the Fashion-MNIST dataset is present.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DATASET_PACKAGE := dataset-fashion-mnist
DATASET_DIR := $(or $(FMNIST_DATA_DIR),/usr/share/datasets/fashion-mnist)

.PHONY: demo test train benchmark lint dataset venv

demo: venv dataset
	$(PY) demo_program.py $(ARGS)

test: venv dataset
	$(PY) -m pytest -q $(ARGS)

train: venv dataset
	$(PY) -m fmnist_app.train --config config.json $(ARGS)

benchmark: venv dataset
	$(PY) benchmark.py $(ARGS)

lint: venv
	$(VENV)/bin/ruff check .

venv: $(INSTALLED)

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Installs the Debian package when root; otherwise says exactly what to run.
dataset:
	@if [ -f "$(DATASET_DIR)/train-images-idx3-ubyte.gz" ] || [ -f "$(DATASET_DIR)/train-images-idx3-ubyte" ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian package $(DATASET_PACKAGE) ..."; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DATASET_PACKAGE)) \
			|| { echo "error: could not install $(DATASET_PACKAGE) with apt-get"; exit 1; }; \
	else \
		echo "error: Fashion-MNIST is missing at $(DATASET_DIR); run: sudo apt-get install $(DATASET_PACKAGE)"; \
		exit 1; \
	fi
