#!/usr/bin/env bash
# Reproduce the bundled pyratok-tiny, its ablations and the tiny text-to-video prior on a 2-core CPU.
# Budget used here (2 cores shared with other work): backbone ~20 min, tokenizer ~15 min, ablations ~25 min,
# prior ~10 min. Every step resumes if interrupted (run the script again).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
PYRATOK=${PYRATOK:-.venv/bin/pyratok}
PY=${PY:-.venv/bin/python}

[ -f data/corpus/corpus.json ] || $PYRATOK build-corpus data/corpus --seed 0 --no-progress
[ -f runs/tiny-backbone/vae/config.json ] || $PYRATOK train examples/configs/tiny_backbone.yaml
[ -f runs/tiny-tokenizer-stage1/final/config.json ] || $PYRATOK train examples/configs/tiny_tokenizer_stage1.yaml
[ -f runs/tiny-tokenizer-stage2/final/config.json ] || $PYRATOK train examples/configs/tiny_tokenizer_stage2.yaml

# Ablations: two at a time (one core each).
run_ablation() { [ -f "runs/ablation-$1/final/config.json" ] || $PYRATOK train "examples/configs/ablations/$1.yaml"; }
run_ablation full & run_ablation single_level_lfq & wait
run_ablation no_text & run_ablation two_levels & wait
$PY benchmarks/ablation_table.py --data data/corpus/val --output docs/results_ablation.md

# Token prior for text-to-video, then bundle everything into the package.
$PY examples/recipes/train_tiny_prior.py --tokenizer runs/tiny-tokenizer-stage2/final --data data/corpus/train --output runs/tiny-prior
$PY examples/recipes/bundle_tiny.py --tokenizer runs/tiny-tokenizer-stage2/final --pipeline runs/tiny-prior/pipeline --data data/corpus/val
