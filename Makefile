# The two commands of the README: `make demo` and `make test`. Each creates or refreshes .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Test processes: most tests wait on simulated devices, not on the CPU, so more than the cores.
TEST_WORKERS ?= 4

.PHONY: demo test quick install system-deps venv bench clean

demo: system-deps venv
	$(BIN)/edge demo

test: system-deps venv
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# While working: everything except the tests marked slow (endurance, kill loops, volume) or browser.
quick: venv
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow and not browser"

# As root on the station PC or Pi: package, unit, /etc config skeleton, udev rule, user.
# EXTRAS: the optional parts the config needs (sh systemd/install.sh --help lists them); by
# default those of the shipped skeleton, config/station.example.yaml.
EXTRAS ?= gpiod,hid
install:
	sh systemd/install.sh $(if $(EXTRAS),--extras $(EXTRAS))

bench: venv
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/rtu_poll.py
	$(BIN)/python bench/camera_decode.py
	$(BIN)/python bench/sync_rates.py
	$(BIN)/python bench/fleet_rates.py
	$(BIN)/python bench/webapp.py
	$(BIN)/python bench/photo_uploads.py
	$(BIN)/python bench/lookup.py
	$(BIN)/python bench/history.py --fills 10000 100000
	$(BIN)/python bench/backup.py --fills 100000
	$(BIN)/python bench/archive.py --fills 30000

system-deps:
	@sh scripts/system-deps.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,camera,sim,fleet]'
	touch $@

clean:
	rm -rf $(VENV) var build *.egg-info
