# Two commands for a newcomer: `make test` and `make demo`. Both build the venv from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: FORCE test demo install clean-compiled lint typecheck unit unit-pure integration schemas clean prometheus chaos bench bench-timers-10m

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The editable install also compiles the core in place with mypyc (setup.py; ~40 s). That
# needs a C compiler and the Python headers (python3-dev): without them, or with
# CRM_COMPILE=0, the core is installed as pure Python (same behaviour, slower).
ifneq ($(CRM_COMPILE),0)
CAN_COMPILE := $(shell $(PYTHON) -c 'import os, shutil, sysconfig; print(int(bool(shutil.which("cc") or shutil.which("gcc")) and os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))))' 2>/dev/null)
ifeq ($(CAN_COMPILE),0)
$(warning no C compiler or no Python headers (python3-dev): the core runs uncompiled, slower)
CRM_COMPILE := 0
endif
endif
COMPILE := $(if $(filter 0,$(CRM_COMPILE)),0,1)
export CRM_COMPILE := $(COMPILE)

# Compiled modules sit next to their sources and win the import: a pure install removes them.
REMOVE_COMPILED := find streams schemas -name '*.so' -delete; rm -f *__mypyc.*.so build/compiled-sources.json
COMPILED_STAMP := $(VENV)/.compiled
COMPILE_MODE := $(VENV)/.compile-mode

$(STAMP): pyproject.toml setup.py | $(BIN)/python
	$(if $(filter 0,$(COMPILE)),$(REMOVE_COMPILED))
	$(BIN)/python -m pip install --quiet -e '.[test]'
	echo $(COMPILE) | cmp -s - $(COMPILE_MODE) || echo $(COMPILE) > $(COMPILE_MODE)
	touch $(STAMP) $(COMPILED_STAMP)

# Rewritten only when CRM_COMPILE changes, so a switch recompiles (or uncompiles) once.
$(COMPILE_MODE): FORCE | $(BIN)/python
	@echo $(COMPILE) | cmp -s - $@ || echo $(COMPILE) > $@

# An edited module of the core is recompiled before anything runs it (the compiled
# module, not the .py beside it, is what Python imports); so are the ones it imports types from.
$(COMPILED_STAMP): $(wildcard streams/core/*.py streams/simulator.py streams/simulated_rejects.py schemas/*.py) $(COMPILE_MODE) | $(STAMP)
	$(if $(filter 0,$(COMPILE)),$(REMOVE_COMPILED))
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(STAMP) $(COMPILED_STAMP)

# Back to the pure-Python core (until the next `make install`).
clean-compiled:
	$(REMOVE_COMPILED)
	rm -f $(COMPILED_STAMP)

lint: install
	$(BIN)/ruff check streams schemas tests setup.py
	$(BIN)/ruff format --check streams schemas tests setup.py

typecheck: install
	$(BIN)/mypy streams schemas

unit: install
	$(BIN)/pytest tests/unit -q

# The unit suite once more on the pure-Python core (what `CRM_COMPILE=0` installs), from
# a copy of the tree without the compiled modules: both must behave the same.
PURE_TREE := build/pure-tree
unit-pure: install
	rm -rf $(PURE_TREE) && mkdir -p $(PURE_TREE)
	tar --exclude='./.venv' --exclude='./build' --exclude='./var' --exclude='./bench/.venv-peer' \
	  --exclude='*.so' --exclude='__pycache__' --exclude='./.git' -cf - . | tar -xf - -C $(PURE_TREE)
	cd $(PURE_TREE) && $(CURDIR)/$(BIN)/python -c \
	  'from streams.compiled_core import core_is_compiled; assert not core_is_compiled()'
	cd $(PURE_TREE) && $(CURDIR)/$(BIN)/pytest tests/unit -q -p no:cacheprovider

integration: install
	$(BIN)/pytest tests/integration -q

# Prometheus and promtool (Debian package) for the monitoring tests. Installed when
# missing and this machine can (root or passwordless sudo, apt-get); otherwise those
# tests skip and say why.
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || (sudo -n true 2>/dev/null && echo "sudo -n apt-get"))
prometheus:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then :; \
	elif [ -n "$(APT)" ] && command -v apt-get >/dev/null; then \
	  echo "installing prometheus (Debian package) for the monitoring tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(APT) install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
	  || { $(APT) update -qq >/dev/null 2>&1 \
	       && $(APT) install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; } \
	  || echo "prometheus could not be installed: the monitoring tests will be skipped"; \
	else echo "prometheus is missing and apt-get is not usable here: the monitoring tests will be skipped"; fi

test: lint typecheck prometheus
	$(BIN)/pytest -q -ra
	$(MAKE) --no-print-directory unit-pure

# The reliability suite at full scale (1M events, 20+ SIGKILLs, 60 s broker stall, 100k
# hostile messages, 30 min soak; a broker per scenario): 65-80 minutes here (65.5 in the
# last full run, 2026-11-30: 29 for the scenarios, 36 for the soak).
# Writes tests/chaos/RESULTS.md (overwrites it: keep the history by hand).
chaos: install
	CHAOS_SCALE=full CHAOS_RESULTS=tests/chaos/RESULTS.md $(BIN)/pytest tests/chaos -q -rA

# Every performance figure side by side on the embedded broker (bench/run.py): limit,
# peer (Quix Streams), Faust baselines, crm-triggers with 1 and 2 workers, latency,
# timers, simulator, recovery (time: bench/README.md); BENCH_SCALE=0.05 for a quick look. The
# peer lives in its own venv: a point of comparison, never a dependency of the project.
PEER_VENV ?= bench/.venv-peer
PEER_STAMP := $(PEER_VENV)/.installed
QUIXSTREAMS_VERSION ?= 3.28.1

$(PEER_STAMP):
	rm -rf $(PEER_VENV)
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet quixstreams==$(QUIXSTREAMS_VERSION)
	touch $@

bench: install $(PEER_STAMP)
	BENCH_PEER_PYTHON=$(PEER_VENV)/bin/python $(BIN)/python bench/run.py

# 10M pending timers in one worker on the RocksDB store, measured (not extrapolated):
# RSS, fire lateness, recovery and a restart on its own files. ~18 minutes here; the
# embedded broker holds the ~6.5 GB changelog in memory.
bench-timers-10m: install
	BENCH_PENDING_TIMERS=10000000 CRM_STORE=rocksdb:// BENCH_STAGES=timers $(BIN)/python bench/run.py

demo: install
	$(BIN)/crm-triggers demo $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS),)

schemas: install
	$(BIN)/python -m schemas.export

clean: clean-compiled
	rm -rf $(VENV) $(PEER_VENV) var build .pytest_cache .mypy_cache .ruff_cache
