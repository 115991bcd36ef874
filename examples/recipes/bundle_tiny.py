"""Copy the trained tiny tokenizer (and, if given, the tiny T2V pipeline) into the package, with a model card.

    python examples/recipes/bundle_tiny.py --tokenizer runs/tiny-tokenizer-stage2/final --data data/corpus/val

The card's metrics are measured here on the validation split; the recipe is examples/recipes/train_tiny.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

PACKAGE_BUNDLE = os.path.join(os.path.dirname(__file__), "..", "..", "src", "pyratok_hf", "bundled")

CARD = """---
license: apache-2.0
library_name: transformers
tags: [video, tokenizer, pyratok, lfq, text-to-video]
pipeline_tag: feature-extraction
---
# pyratok-tiny

A tiny PyraTok video tokenizer trained **by this repository on a 2-core CPU**, for demos and tests. It is
not a substitute for the paper's model: it has seen ~{clips} synthetic and CC0 clips of 64x64 pixels.

* Backbone: a {backbone_params:.2f}M-parameter Wan-architecture causal VAE (diffusers `AutoencoderKLWan`,
  8x spatial / 4x temporal, 16 latent channels) trained first, then frozen; LoRA (rank 16, alpha 32) on its
  encoder during tokenizer training, merged into the saved weights.
* LaPQ: {levels} levels with token grids 1/8, 1/4, 1/2, 1 of the latent grid; {bits}-bit lookup-free codes
  ({codes:,} codes shared by all levels); text conditioning from all-MiniLM-L6-v2 (referenced, not bundled).
* Total parameters: {params:.2f}M.

## Validation metrics (17 frames, 64x64, {num_clips} held-out clips)

| PSNR (dB) | SSIM | bits per pixel | codebook use per level (of reachable) | perplexity per level |
|---|---|---|---|---|
| {psnr:.2f} | {ssim:.3f} | {bpp:.4f} | {usage} | {perplexity} |

Continuous backbone alone (no quantization): PSNR {backbone_psnr}.

## Usage

```python
from pyratok_hf import PyraTokModel, bundled_model_path
model = PyraTokModel.from_pretrained(bundled_model_path())
enc = model.encode(video, text="a red circle moves right")   # video [B, 3, T, H, W] in [-1, 1]
video_hat = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
```

## Recipe

`make train-tiny` (examples/recipes/train_tiny.sh): build the offline corpus (seed 0), train the backbone
(examples/configs/tiny_backbone.yaml), then PyraTok stage 1 (masked, 80 steps) and stage 2 (text
alignment, 150 steps). Training summary: {train_summary}

## Limitations

Trained for minutes on tiny synthetic data: reconstructions are blurry, and text alignment is weak. Use it
to try the API, not to judge the method.
"""


def copy_model(src: str, dst: str) -> None:
    """Copy weights + config only (no remote-code .py files: the installed package provides the classes)."""
    tmp = dst + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in os.listdir(src):
        if name.endswith((".json", ".safetensors", ".txt", ".model")) and name != "backbone_lora.safetensors":
            shutil.copy2(os.path.join(src, name), tmp)
    config_path = os.path.join(tmp, "config.json")
    if os.path.isfile(config_path):
        with open(config_path) as f:
            config = json.load(f)
        config.pop("auto_map", None)
        config.pop("backbone_pretrained", None)
        with open(config_path, "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", default="runs/tiny-tokenizer-stage2/final")
    parser.add_argument("--backbone", default="runs/tiny-backbone/vae")
    parser.add_argument("--pipeline", default=None, help="a saved PyraTokT2VPipeline folder to bundle too")
    parser.add_argument("--data", default="data/corpus/val")
    parser.add_argument("--summary", default="runs/tiny-tokenizer-stage2/train_summary.json")
    args = parser.parse_args(argv)

    from ablation_table import evaluate_backbone, evaluate_tokenizer, load_clips

    from pyratok_hf import PyraTokModel
    from pyratok_hf.video_io import atomic_write_text

    dst = os.path.join(PACKAGE_BUNDLE, "pyratok-tiny")
    copy_model(args.tokenizer, dst)
    clips = load_clips(args.data, None)
    metrics = evaluate_tokenizer(dst, clips)
    backbone = evaluate_backbone(args.backbone, clips) if os.path.isdir(args.backbone) else None
    model = PyraTokModel.from_pretrained(dst)
    summary = {}
    if os.path.isfile(args.summary):
        with open(args.summary) as f:
            summary = {k: v for k, v in json.load(f).items() if k in ("global_step", "train_seconds", "train_loss")}
    card = CARD.format(
        clips=528, backbone_params=sum(p.numel() for p in model.backbone.parameters()) / 1e6,
        levels=model.config.num_levels, bits=model.config.codebook_bits, codes=2**model.config.codebook_bits,
        params=sum(p.numel() for p in model.parameters()) / 1e6, num_clips=metrics["num_clips"],
        psnr=metrics["psnr"], ssim=metrics["ssim"], bpp=metrics["bpp"], usage=metrics["codebook_usage"],
        perplexity=metrics["perplexity"], backbone_psnr=f"{backbone['psnr']:.2f} dB, SSIM {backbone['ssim']:.3f}" if backbone else "n/a",
        train_summary=json.dumps(summary),
    )
    atomic_write_text(card, os.path.join(dst, "README.md"))
    from pyratok_hf.video_io import atomic_write_json

    atomic_write_json({"validation": metrics, "backbone_validation": backbone}, os.path.join(dst, "metrics.json"))
    if args.pipeline:
        pipe_dst = os.path.join(PACKAGE_BUNDLE, "pyratok-tiny-t2v")
        tmp = pipe_dst + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(args.pipeline, tmp, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        shutil.rmtree(pipe_dst, ignore_errors=True)
        os.replace(tmp, pipe_dst)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
