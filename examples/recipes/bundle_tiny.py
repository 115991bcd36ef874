"""Package a trained tiny tokenizer as ``pyratok-tiny``: weights, config, measured metrics and a model card.

    python examples/recipes/bundle_tiny.py --tokenizer runs/tokenizer/model                 # -> outputs/bundle/pyratok-tiny
    python examples/recipes/bundle_tiny.py --tokenizer runs/tokenizer/model --into-package  # replace the bundled model

Metrics are measured here, on held-out real clips (camera moves over photos that never fed training, and the
city clip's second shot when ``--city-clip`` is given; 17 frames, 256x192), for both the tokenizer
(tokens -> video, through ``decode(token_ids=...)``) and its continuous backbone (encode -> mode -> decode).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

PACKAGE_BUNDLE = Path(__file__).resolve().parents[2] / "src" / "pyratok_hf" / "bundled"

CARD = """---
license: apache-2.0
library_name: transformers
tags: [video, tokenizer, pyratok, lfq]
pipeline_tag: feature-extraction
---
# pyratok-tiny

A tiny PyraTok video tokenizer trained **by this repository on a 2-core CPU**, for demos and tests. It is not
the paper's model and not a competitive codec: see the numbers below, measured on real clips it never saw.

* Backbone: a {backbone_params:.2f}M-parameter Wan-architecture causal VAE (diffusers `AutoencoderKLWan`,
  8x spatial / 4x temporal, 16 latent channels), trained on CC0 / public-domain photos and the CC0 city clip
  (`examples/recipes/train_backbone.py`), then fine-tuned with the tokenizer (`examples/recipes/train_tokenizer.py`).
* LaPQ: {levels} levels with token grids 1/8, 1/4, 1/2, 1 of the latent grid; {bits}-bit lookup-free codes
  ({codes:,} codes shared by all levels); text conditioning from all-MiniLM-L6-v2 (referenced, not bundled).
  This release was trained without captions (reconstruction only): text conditioning is present but untrained.
* Total parameters: {params:.2f}M.

## Held-out real clips ({num_clips} clips, 17 frames, 256x192)

| path | mean PSNR (dB) | bits per pixel |
|---|---|---|
| tokens -> video (`decode(token_ids=...)`) | {psnr:.2f} | {bpp:.4f} |
| continuous backbone (encode -> mode -> decode) | {backbone_psnr:.2f} | (continuous) |
| tokens -> video, 33-frame clips ({num_long} clips, two 17-frame causal windows) | {psnr_33:.2f} | {bpp_33:.4f} |

Per clip: {per_clip}

Training: {training}

## Usage

```python
from pyratok_hf import PyraTokModel, bundled_model_path
model = PyraTokModel.from_pretrained(bundled_model_path())
enc = model.encode(video)                   # video [B, 3, T, H, W] in [-1, 1]
video_hat = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
```

## Limitations

A 16-channel tiny backbone trained for about an hour on one CPU core: reconstructions are recognisable but
blurred and fine texture is lost. It was trained on 17-frame clips, so its config sets
`causal_window_frames=17`: longer clips are coded as consecutive 17-frame causal windows (one extra intra
latent frame per window: 10 latent frames instead of 9 on a 33-frame clip) because one causal pass drifts
past frame 17. x264 at
the same number of bits is far better. Use it to try the API, not to judge the method.
"""


def copy_model(src: Path, dst: Path, window: int | None) -> None:
    """Copy weights + config only (the installed package provides the classes), atomically."""
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for item in src.iterdir():
        if item.suffix in (".json", ".safetensors") and item.name != "backbone_lora.safetensors":
            shutil.copy2(item, tmp / item.name)
    config = json.loads((tmp / "config.json").read_text())
    config.pop("auto_map", None)
    config.pop("backbone_pretrained", None)
    config["causal_window_frames"] = window
    (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def measure(folder: Path, city_clip: str | None) -> dict:
    import torch

    from pyratok_hf import PyraTokModel
    from pyratok_hf.training.real_data import heldout_real_clips, load_city_shots, psnr

    model = PyraTokModel.from_pretrained(folder).eval()
    vae = model.backbone.vae
    shots = load_city_shots(city_clip) if city_clip else None  # decoded once for both clip lengths
    clips = heldout_real_clips(shots, num_frames=17)
    tokens, backbone, bpp = {}, {}, None
    with torch.inference_mode():
        for name, clip in clips:
            enc = model.encode(clip[None])
            tokens[name] = psnr(model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample[0], clip)
            backbone[name] = psnr(vae._decode(vae._encode(clip[None])[:, : vae.config.z_dim]).sample[0], clip)
            bpp = sum(ids.numel() for ids in enc.token_ids) * model.config.codebook_bits / (clip.shape[1] * clip.shape[2] * clip.shape[3])
        long_clips = heldout_real_clips(shots, num_frames=33)
        long_scores, bpp_33 = {}, None
        for name, clip in long_clips:  # the length users bring (the demo sample is 33 frames)
            enc = model.encode(clip[None])
            long_scores[name] = psnr(model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample[0], clip)
            bpp_33 = sum(ids.numel() for ids in enc.token_ids) * model.config.codebook_bits / (clip.shape[1] * clip.shape[2] * clip.shape[3])
    return {
        "psnr_33": sum(long_scores.values()) / len(long_scores), "bpp_33": bpp_33, "num_long": len(long_clips),
        "per_clip_33": {k: round(v, 2) for k, v in long_scores.items()},
        "psnr": sum(tokens.values()) / len(tokens), "bpp": bpp, "backbone_psnr": sum(backbone.values()) / len(backbone),
        "per_clip": {k: {"tokens": round(tokens[k], 2), "backbone": round(backbone[k], 2)} for k in tokens},
        "num_clips": len(clips), "protocol": "17 frames, 256x192, pyratok_hf.training.real_data.heldout_real_clips(seed=1234)",
        "backbone_params": sum(p.numel() for p in model.backbone.parameters()) / 1e6,
        "params": sum(p.numel() for p in model.parameters()) / 1e6,
        "levels": model.config.num_levels, "bits": model.config.codebook_bits,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True, help="a saved PyraTokModel folder")
    parser.add_argument("--output", default="outputs/bundle", help="where pyratok-tiny/ is written (default outputs/bundle)")
    parser.add_argument("--into-package", action="store_true", help="write into src/pyratok_hf/bundled/ instead")
    parser.add_argument("--city-clip", default=os.environ.get("PYRATOK_CITY_CLIP"))
    parser.add_argument("--training", default="", help="one line on the training budget, for the card")
    parser.add_argument("--window", type=int, default=17, help="config.causal_window_frames of the bundle (the training clip length); 0 = one pass")
    args = parser.parse_args(argv)

    dst = (PACKAGE_BUNDLE if args.into_package else Path(args.output)) / "pyratok-tiny"
    dst.parent.mkdir(parents=True, exist_ok=True)
    copy_model(Path(args.tokenizer), dst, args.window or None)
    m = measure(dst, args.city_clip)
    per_clip = "; ".join(f"{k}: {v['tokens']:.1f} / {v['backbone']:.1f}" for k, v in m["per_clip"].items())
    card = CARD.format(codes=2 ** m["bits"], per_clip=per_clip + " (tokens / backbone, dB)", training=args.training or "see docs/training.md", **{
        k: m[k] for k in ("backbone_params", "levels", "bits", "params", "num_clips", "psnr", "bpp", "backbone_psnr", "psnr_33", "bpp_33", "num_long")})
    (dst / "README.md").write_text(card)
    (dst / "metrics.json").write_text(json.dumps({"heldout_real": m}, indent=2))
    print(json.dumps({k: v for k, v in m.items() if not k.startswith("per_clip")}, indent=2))
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
