#!/usr/bin/env bash
# The pyratok-tiny recipe on a lent GPU, in under 10 minutes, continuing the committed run state.
#
#   bash examples/recipes/train_gpu.sh                 # on the device machine (the `run` tool), writes $OUT
#
# It copies training_state/ into runs/, continues the backbone run, then the tokenizer run (same scripts and
# arguments as examples/recipes/train_tiny.sh, with --device cuda and bigger batches), measures the result on the
# held-out real clips (bundle_tiny.py) and leaves everything under $OUT (default outputs/gpu): the new run
# state (copy it back over training_state/ and commit), the bundle folder and the logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-outputs/gpu}
PY=${PY:-python}
BACKBONE_MIN=${BACKBONE_MINUTES:-3.5}
TOKENIZER_MIN=${TOKENIZER_MINUTES:-3.5}
mkdir -p runs "$OUT"
[ -d runs/backbone ] || cp -r training_state/backbone runs/backbone
[ -d runs/tokenizer ] || cp -r training_state/tokenizer runs/tokenizer
$PY -c "import torch; assert torch.cuda.is_available(), 'no GPU'; print(torch.cuda.get_device_name(0))"
$PY examples/recipes/train_backbone.py --output runs/backbone --minutes "$BACKBONE_MIN" --device cuda --threads 8 \
    --batch 64 --image-steps 977 --video-every 2 --video-frames 17 --video-batch 8 --eval-every 100 --save-every 1 \
    2>&1 | tee "$OUT/backbone.log"
$PY examples/recipes/train_tokenizer.py --backbone runs/backbone --output runs/tokenizer --minutes "$TOKENIZER_MIN" \
    --device cuda --threads 8 --image-steps 0 --video-every 2 --video-frames 17 --video-batch 8 --continuous-every 3 \
    --train-encoder --decoder-lr 4e-4 --eval-every 100 --save-every 1 --decay-minutes 1.5 2>&1 | tee "$OUT/tokenizer.log"
$PY examples/recipes/bundle_tiny.py --tokenizer runs/tokenizer/model --output "$OUT/bundle" 2>&1 | tee "$OUT/bundle.log"
mkdir -p "$OUT/training_state"
for run in backbone tokenizer; do
  mkdir -p "$OUT/training_state/$run"
  cp runs/$run/state.safetensors runs/$run/state.json runs/$run/curve.jsonl "$OUT/training_state/$run/"
done
cp -r runs/backbone/vae "$OUT/training_state/backbone/vae"
echo "done: $OUT"
