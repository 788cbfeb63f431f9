# Two commands do all the set-up on a fresh machine:
#   make conformance   create .venv if needed, install, run the default campaign, write ./conformance-report/
#   make test          create .venv if needed, install, run the whole test suite (CUDA simulator tests included)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lint typecheck test test-cpu test-cuda conformance bench bench-losses clean browser-test-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install when the project metadata or the pins change.
$(STAMP): $(PY) pyproject.toml constraints-dev.txt
	$(PY) -m pip install --quiet -c constraints-dev.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Chromium for the test that renders report.html in a headless browser (tests/conformance/test_html.py).
# Never fails: where it cannot be installed (no root, no network) that test is skipped and says why.
browser-test-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  apt-get install -y chromium >/dev/null 2>&1 || \
	  { apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null 2>&1; } || \
	  echo "make browser-test-deps: chromium could not be installed; the browser test will be skipped"

# ruff over the library and the tests (conformance/ keeps its own style and is not linted here).
lint: $(STAMP)
	$(PY) -m ruff check nbxent tests benchmarks/bench_cuda.py

# The public surface type-checks (signatures and hints of nbxent and nbxent.cuda).
typecheck: $(STAMP)
	$(PY) -m mypy nbxent/__init__.py nbxent/functional.py nbxent/cuda/__init__.py

# Every part always runs (the simulator must be enabled before numba is imported,
# so CPU and CUDA are two pytest sessions; the semantic suite tests/semantic runs
# in both, on each backend); each prints its own summary and the target fails if
# any failed.
test: $(STAMP) browser-test-deps
	@lint=0; types=0; cpu=0; cuda=0; \
	$(MAKE) --no-print-directory lint || lint=$$?; \
	$(MAKE) --no-print-directory typecheck || types=$$?; \
	$(PY) -m pytest -q -p no:cacheprovider tests --ignore=tests/cuda || cpu=$$?; \
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q -p no:cacheprovider tests/cuda tests/semantic || cuda=$$?; \
	echo "make test: lint exit $$lint, typecheck exit $$types, CPU suite exit $$cpu, CUDA-simulator suite exit $$cuda"; \
	test $$lint -eq 0 -a $$types -eq 0 -a $$cpu -eq 0 -a $$cuda -eq 0

test-cpu: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests --ignore=tests/cuda

test-cuda: $(STAMP)
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q -p no:cacheprovider tests/cuda tests/semantic

conformance: $(STAMP)
	$(PY) -m conformance run --report-dir conformance-report

bench: $(STAMP)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/bench_linear.py
	$(PY) benchmarks/bench_llm.py

bench-losses: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) conformance-report .pytest_cache
