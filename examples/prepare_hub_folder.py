"""Prepare the folder push_to_hub would upload (weights, config with auto_map, modeling code, model card),
and check that it loads back through every entry point.

    python examples/prepare_hub_folder.py --repo-id org/pyratok-tiny --output outputs/hub/pyratok-tiny
"""

import argparse
import json
import os

from transformers import AutoModel

from pyratok_hf import AutoencoderPyraTok, PyraTokModel, bundled_model_path
from pyratok_hf.hub import prepare_hub_folder

parser = argparse.ArgumentParser()
parser.add_argument("--model", default=bundled_model_path())
parser.add_argument("--repo-id", default="org/pyratok-tiny")
parser.add_argument("--output", default="outputs/hub/pyratok-tiny")
args = parser.parse_args()

metrics_file = os.path.join(args.model, "metrics.json")
metrics = None
if os.path.isfile(metrics_file):
    with open(metrics_file) as f:
        recorded = json.load(f)
    # bundle_tiny.py writes "heldout_real" (held-out real clips); older bundles wrote "validation".
    validation = recorded.get("heldout_real") or recorded.get("validation") or {}
    metrics = {k: round(validation[k], 4) for k in ("psnr", "ssim", "bpp", "backbone_psnr") if isinstance(validation.get(k), (int, float))} or None
folder = prepare_hub_folder(args.model, args.output, repo_id=args.repo_id, metrics=metrics)
print("files:", sorted(os.listdir(folder)))
for loader in (PyraTokModel.from_pretrained, AutoModel.from_pretrained, AutoencoderPyraTok.from_pretrained):
    loader(folder)
print(f"{folder} loads with PyraTokModel, AutoModel and AutoencoderPyraTok; upload it with "
      f"pyratok_hf.hub.push_model_to_hub(folder, '{args.repo_id}') when online.")
