# imgpipe: `make demo` runs the pipeline end to end, `make test` runs the tests.
# Both create the virtualenv first when it is missing (Python 3.10 + uv + requirements.lock).

VENV    ?= .venv
PY      := $(VENV)/bin/python
# A working Python 3.10 (a pyenv shim can exist without the version being active).
PY310   ?= $(shell for p in $$HOME/.pyenv/versions/3.10.*/bin/python3.10 $$(command -v python3.10); do \
             "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { echo "$$p"; break; }; done)
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-slow lint bench bench-evaluator bench-trainer bench-scale bench-cache \
        bench-near-duplicates bench-retrain bench-quality \
        compile lock clean-home help

help:
	@echo "make demo       run the full local pipeline on the embedded digits dataset"
	@echo "make test       run the tests (what CI runs)"
	@echo "make test-slow  run the slow tests (need ../shared/data)"
	@echo "make lint       ruff, and the import contracts of the layers (.importlinter)"
	@echo "make bench      local pipeline wall time and peak RSS (bench-evaluator, bench-trainer: the others)"
	@echo "make bench-scale  stage times and peak RSS at 1x, 4x, 16x of a flowers5-derived set"
	@echo "make bench-cache  training from a 50,000-image feature cache spilled to disk vs in memory"
	@echo "make bench-near-duplicates  the near-duplicate threshold on real photos, its ingestion cost, bursts' eval accuracy"
	@echo "make bench-retrain  four nightly runs on flower_photos cut into date spans, vs from scratch"
	@echo "make bench-quality  the Trainer's recipes on flower_photos and hymenoptera, over seeds"
	@echo "make lock       re-resolve requirements.in into requirements.lock"
	@echo "make compile    compile the Kubeflow pipeline spec (KFP_CONFIG=..., default: the dev overlay's)"

$(STAMP): requirements.lock requirements-tools.txt setup.py
	@test -n "$(PY310)" || { echo "imgpipe needs Python 3.10 (TFX 1.16 supports < 3.11): install it, e.g. 'pyenv install 3.10.13'" >&2; exit 1; }
	@test -x $(PY) || $(PY310) -m venv $(VENV)
	@test -x $(VENV)/bin/uv || { $(PY) -m ensurepip -q >/dev/null 2>&1; $(PY) -m pip install -q uv==0.13.9; }
	$(VENV)/bin/uv pip install --python $(PY) --compile-bytecode -r requirements.lock
	$(VENV)/bin/uv pip install --python $(PY) --compile-bytecode --no-deps -e .
	$(VENV)/bin/uv pip install --python $(PY) --no-deps --target $(VENV)/tools -r requirements-tools.txt
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/imgpipe run --config pipeline/configs/demo.yaml

KFP_CONFIG ?= kubernetes/overlays/dev/pipeline.yaml
compile: $(STAMP)
	$(VENV)/bin/imgpipe compile --target kubeflow --config $(KFP_CONFIG)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# The tools live in $(VENV)/tools (requirements-tools.txt), beside the project's packages.
lint: $(STAMP)
	$(VENV)/tools/bin/ruff check .
	PYTHONPATH=$(VENV)/tools $(VENV)/tools/bin/lint-imports

bench: $(STAMP)
	$(PY) bench/pipeline_bench.py

bench-evaluator: $(STAMP)
	$(PY) bench/evaluator_bench.py

bench-trainer: $(STAMP)
	$(PY) bench/trainer_vs_seed.py

bench-scale: $(STAMP)
	$(PY) bench/scale_bench.py

bench-cache: $(STAMP)
	$(PY) bench/feature_cache_bench.py

bench-near-duplicates: $(STAMP)
	$(PY) bench/near_duplicate_bench.py

bench-retrain: $(STAMP)
	$(PY) bench/retrain_bench.py

bench-quality: $(STAMP)
	$(PY) bench/quality_bench.py

lock: $(STAMP)
	$(VENV)/bin/uv pip compile requirements.in --python-version 3.10 -o requirements.lock

clean-home:
	rm -rf imgpipe_home
