"""Learning check: overfit one real clip, with the continuous backbone and with the tokenizer.

A model that cannot memorise one clip has a bug (loss scaling, latent normalisation, frozen parts, data
range...). This trains on random crops (all frames, so the temporal path learns too) of a single real clip
and reports full-clip PSNR against CPU-minutes; the targets are >= 35 dB (backbone) and >= 28 dB (tokens).

    python benchmarks/bench_overfit.py --minutes 10                       # fresh backbone
    python benchmarks/bench_overfit.py --backbone runs/backbone/vae --tokenizer --minutes 10

Results go to benchmarks/results/bench_overfit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import torch

from pyratok_hf import PyraTokConfig, PyraTokModel
from pyratok_hf.data import sample_video_path
from pyratok_hf.training.real_data import psnr
from pyratok_hf.video_io import read_video


def cpu_minutes() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) / 60.0


def random_crops(clip: torch.Tensor, step: int, batch: int, frames: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(step)
    _, t, h, w = clip.shape
    out = []
    for _ in range(batch):
        t0 = int(torch.randint(0, t - frames + 1, (1,), generator=g))
        y = int(torch.randint(0, h - size + 1, (1,), generator=g))
        x = int(torch.randint(0, w - size + 1, (1,), generator=g))
        out.append(clip[:, t0 : t0 + frames, y : y + size, x : x + size])
    return torch.stack(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(sample_video_path()))
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--backbone", default=None, help="start from a trained diffusers Wan VAE folder")
    parser.add_argument("--tokenizer", action="store_true", help="overfit the tokenizer (LaPQ + decoder) instead")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "bench_overfit.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    clip = read_video(args.video, max_frames=args.frames).frames  # [3, T, H, W] in [-1, 1]
    config = PyraTokConfig.from_preset("pyratok-tiny")
    if args.backbone:
        model = PyraTokModel.from_backbone(config, os.path.dirname(args.backbone.rstrip("/")), subfolder=os.path.basename(args.backbone.rstrip("/")))
    else:
        model = PyraTokModel(config)
    vae = model.backbone.vae
    if args.tokenizer:
        with torch.no_grad():
            z = vae._encode(clip[None])[:, :16]
        model.config.latents_mean = z.mean(dim=(0, 2, 3, 4)).tolist()
        model.config.latents_std = z.std(dim=(0, 2, 3, 4)).clamp_min(1e-4).tolist()
        model.backbone.requires_grad_(False)
        vae.decoder.requires_grad_(True)
        vae.post_quant_conv.requires_grad_(True)
        params = [p for p in model.parameters() if p.requires_grad]
    else:
        vae.requires_grad_(True)
        params = list(vae.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99))

    @torch.no_grad()
    def full_clip_psnr() -> float:
        model.eval()
        if args.tokenizer:
            enc = model.encode(clip[None])
            recon = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample[0]
        else:
            recon = vae._decode(vae._encode(clip[None])[:, :16]).sample[0]
        model.train()
        return psnr(recon, clip)

    curve = [{"step": 0, "cpu_minutes": 0.0, "psnr": round(full_clip_psnr(), 3)}]
    print(curve[-1], flush=True)
    start, last, step = time.time(), time.time(), 0
    cpu0 = cpu_minutes()
    while (time.time() - start) / 60 < args.minutes:
        x = random_crops(clip, step, 4, 5 if step % 2 else 1, 64)
        if args.tokenizer:
            out = model(pixel_values=x)
            loss = out.loss + model.config.recon_weight * (out.reconstruction - x).pow(2).mean()
        else:
            recon = vae._decode(vae._encode(x)[:, :16]).sample
            loss = (recon - x).abs().mean() + (recon - x).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if time.time() - last > 60:
            curve.append({"step": step, "cpu_minutes": round(cpu_minutes() - cpu0, 2), "psnr": round(full_clip_psnr(), 3)})
            print(curve[-1], flush=True)
            last = time.time()
    curve.append({"step": step, "cpu_minutes": round(cpu_minutes() - cpu0, 2), "psnr": round(full_clip_psnr(), 3)})
    print(curve[-1], flush=True)
    key = "tokenizer" if args.tokenizer else "backbone"
    results = json.load(open(args.output)) if os.path.isfile(args.output) else {}
    results[key] = {"video": os.path.basename(args.video), "frames": args.frames, "start": args.backbone or "random", "curve": curve,
                    "target_db": 28.0 if args.tokenizer else 35.0}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
