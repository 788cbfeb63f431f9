# Two commands do all the set-up on a fresh machine:
#   make conformance   create .venv if needed, install, run the default campaign, write ./conformance-report/
#   make test          create .venv if needed, install, run the whole test suite (CUDA simulator tests included)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-cpu test-cuda conformance bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install when the project metadata or the pins change.
$(STAMP): $(PY) pyproject.toml constraints-dev.txt
	$(PY) -m pip install --quiet -c constraints-dev.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Both halves always run (the simulator must be enabled before numba is
# imported, so they are two pytest sessions); each prints its own summary and
# the target fails if either failed.
test: $(STAMP)
	@cpu=0; cuda=0; \
	$(PY) -m pytest -q -p no:cacheprovider tests --ignore=tests/cuda || cpu=$$?; \
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q -p no:cacheprovider tests/cuda || cuda=$$?; \
	echo "make test: CPU suite exit $$cpu, CUDA-simulator suite exit $$cuda"; \
	test $$cpu -eq 0 -a $$cuda -eq 0

test-cpu: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests --ignore=tests/cuda

test-cuda: $(STAMP)
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q -p no:cacheprovider tests/cuda

conformance: $(STAMP)
	$(PY) -m conformance run --report-dir conformance-report

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) conformance-report .pytest_cache
