#!/usr/bin/env bash
# Reproduce the bundled text-to-video pipeline (pyratok-tiny-t2v) on a CPU; docs/text-to-video.md has the curves.
#
#   bash examples/recipes/train_t2v.sh            # about 3.5 CPU-hours on one core
#
# 1. the corpora: 3,000 mixed clips (their procedural ones teach the tokenizer small shapes) and 2,400 centred
#    single-object clips (`--scenes text-to-video`: the caption determines the picture);
# 2. the tokenizer: pyratok-tiny fine-tuned in full on procedural clips (1,000 steps), then on the centred clips
#    (600 + 600 steps), then its decoder alone with every token id frozen (600 steps), then the decoder again on
#    three colour-reweighted views of the same clips (3 x 400 steps; the rare green and purple came out blue or
#    white);
# 3. the prior on the ids of step 2's second run (they are the final tokenizer's ids too), 1,500 steps, then 300
#    steps on a subset rich in green and purple;
# 4. the pipeline folder and its prompt-following benchmark.
# Nothing is downloaded. Each `pyratok train` resumes its own run when started again.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PY:-.venv/bin/python}
PYRATOK=(${PY} -m pyratok_hf.cli)

[ -f data/t2vcorpus/corpus.json ] || "${PYRATOK[@]}" -q build-corpus data/t2vcorpus --seed 7 --num-train 3000 --num-val 16 \
    --num-long-train 0 --num-long-val 0 --no-city
if [ ! -f data/t2v-procedural/train/metadata.jsonl ]; then  # the procedural clips of the mixed corpus
  $PY - <<'PYEOF'
import json, os
src, dst = "data/t2vcorpus/train", "data/t2v-procedural/train"
os.makedirs(dst, exist_ok=True)
rows = [json.loads(line) for line in open(f"{src}/metadata.jsonl")]
open(f"{dst}/metadata.jsonl", "w").writelines(json.dumps(r) + "\n" for r in rows if r["kind"] == "procedural")
for d in ("procedural", "masks"):
    os.path.exists(f"{dst}/{d}") or os.symlink(os.path.abspath(f"{src}/{d}"), f"{dst}/{d}")
PYEOF
fi
[ -f data/t2v-centred/corpus.json ] || "${PYRATOK[@]}" -q build-corpus data/t2v-centred --seed 11 --num-train 2400 --num-val 48 \
    --scenes text-to-video

"${PYRATOK[@]}" train examples/configs/t2v_tokenizer_procedural.yaml --set training.max_steps=1000 --set data.eval=data/t2v-centred/val
"${PYRATOK[@]}" train examples/configs/t2v_tokenizer_centred.yaml
"${PYRATOK[@]}" train examples/configs/t2v_tokenizer_centred.yaml --set model.init_from=runs/t2v-tokenizer-centred/final \
    --set output_dir=runs/t2v-tokenizer-centred-2 --set training.learning_rate=5.0e-4 \
    --set training.lr_scheduler_type=constant_with_warmup --set training.warmup_steps=20 --set loss_overrides.motion_weight=12.0
$PY examples/recipes/train_tiny_prior.py --tokenizer runs/t2v-tokenizer-centred-2/final --data data/t2v-centred/train \
    --output runs/t2v-prior --steps 1500 --batch-size 16 --eval-every 250
$PY examples/recipes/make_colour_subset.py data/t2v-centred/train data/t2v-centred-prior-gp --repeat green=1 purple=1 --others 117
$PY examples/recipes/train_tiny_prior.py --tokenizer runs/t2v-tokenizer-centred-2/final --data data/t2v-centred-prior-gp \
    --init-prior runs/t2v-prior/final --output runs/t2v-prior-balanced --steps 300 --lr 3e-4 --batch-size 16 --eval-every 100
"${PYRATOK[@]}" train examples/configs/t2v_decoder.yaml
# The decoder again, every id still frozen (the prior stays valid): purple and green over-weighted, then every
# colour 400 times, then green again (make_colour_subset.py writes a metadata.jsonl over the same clip files).
$PY examples/recipes/make_colour_subset.py data/t2v-centred/train data/t2v-centred-pg --repeat purple=3 green=2 blue=1 white=1 --others 100
$PY examples/recipes/make_colour_subset.py data/t2v-centred/train data/t2v-centred-uni --per-colour 400
$PY examples/recipes/make_colour_subset.py data/t2v-centred/train data/t2v-centred-green2 --repeat green=4 purple=2 blue=2 white=2 --others 400
"${PYRATOK[@]}" train examples/configs/t2v_decoder.yaml --set model.init_from=runs/t2v-decoder/final --set data.train=data/t2v-centred-pg \
    --set output_dir=runs/t2v-decoder-pg --set training.max_steps=400
"${PYRATOK[@]}" train examples/configs/t2v_decoder.yaml --set model.init_from=runs/t2v-decoder-pg/final --set data.train=data/t2v-centred-uni \
    --set output_dir=runs/t2v-decoder-uni --set training.max_steps=400 --set training.learning_rate=3.0e-4
"${PYRATOK[@]}" train examples/configs/t2v_decoder.yaml --set model.init_from=runs/t2v-decoder-uni/final --set data.train=data/t2v-centred-green2 \
    --set output_dir=runs/t2v-decoder-green --set training.max_steps=400 --set training.learning_rate=2.0e-4
$PY - <<'PYEOF'
from pyratok_hf.prior import PyraTokPriorModel
from pyratok_hf.prior.training import build_t2v_pipeline
build_t2v_pipeline("runs/t2v-decoder-green/final", PyraTokPriorModel.from_pretrained("runs/t2v-prior-balanced/final"), output_dir="runs/t2v-pipeline")
PYEOF
$PY benchmarks/bench_t2v_prompt_following.py --pipeline runs/t2v-pipeline --scales 1 2 3 6 --seeds 0 1
