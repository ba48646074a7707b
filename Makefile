# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv with the package installed from setup.cfg (once; redone when
# setup.cfg changes) and makes sure the Fashion-MNIST dataset and the system libraries that
# Qt's window (xcb) needs are present: installed with apt-get when root, otherwise the exact
# command to run is printed. `make test` also wants Xvfb, for the real-window test.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DATASET_PACKAGE := dataset-fashion-mnist
# What Qt 6's xcb platform plugin loads on a bare Debian/Ubuntu (libxcb-cursor0 is the one
# most often missing), plus Xvfb/xauth for the test that opens a real window.
WINDOW_PACKAGES := libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 \
	libxcb-cursor0 libegl1 libgl1 libfontconfig1 libdbus-1-3
TEST_PACKAGES := xvfb xauth

.PHONY: demo test train benchmark lint dataset venv window-libs test-libs debian-packages

demo: venv dataset window-libs
	$(PY) demo_program.py $(ARGS)

test: venv dataset window-libs test-libs
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

# Looks where the code looks (fmnist_app/dataset.py: $FMNIST_DATA_DIR, the Debian folder,
# Keras' cache); installs the Debian package when root, otherwise prints what to run.
dataset: venv
	@$(PY) -m fmnist_app.dataset >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian package $(DATASET_PACKAGE) ..."; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DATASET_PACKAGE)) \
			>/dev/null || { echo "error: could not install $(DATASET_PACKAGE) with apt-get"; exit 1; }; \
	else \
		$(PY) -m fmnist_app.dataset; exit 1; \
	fi

# Debian packages: installed when root and apt-get exists; otherwise one line saying what to run.
# Not fatal: --no-gui, the benchmark and training need none of them.
window-libs:
	@$(MAKE) --no-print-directory debian-packages PACKAGES="$(WINDOW_PACKAGES)" \
		WHY="the demo window (Qt xcb)"

test-libs:
	@$(MAKE) --no-print-directory debian-packages PACKAGES="$(TEST_PACKAGES)" \
		WHY="the real-window test (it is skipped without them)"

debian-packages:
	@command -v dpkg >/dev/null 2>&1 || exit 0; \
	missing=$$(for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing for $(WHY): $$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
			>/dev/null || echo "warning: could not install $$missing with apt-get"; \
	else \
		echo "note: $(WHY) needs: sudo apt-get install" $$missing; \
	fi
