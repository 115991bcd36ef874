"""Train the tiny continuous Wan VAE (diffusers ``AutoencoderKLWan``) that pyratok-tiny keeps frozen.

The paper starts from the pretrained Wan 2.2 VAE; none exists offline at this size, so this recipe trains
one on real pictures (CC0 / public-domain photos and the CC0 city clip, see
``pyratok_hf.training.real_data``) with the curriculum measured in ``docs/training.md``:

1. images first (T = 1, random 64x64 crops, batch 16): the causal convs run as 2-D convs on a lone frame
   (``set_single_frame_fast_path``, 1.7x faster), and spatial quality is what most of the PSNR is;
2. then a mix of images and short clips (camera moves over photos, city windows), so the temporal
   down/up-sampling learns too.

Loss: L1 + MSE on pixels (PSNR is what we report), the decoder sees the posterior mode. AdamW with a
constant learning rate after warm-up, plus EMA weights (evaluated and saved): an open-ended run can stop
at any time and resume exactly (``--resume``, the default, continues from ``OUTPUT/state.safetensors`` + ``state.json``).

It prints and logs (``OUTPUT/curve.jsonl``) held-out PSNR (17 frames, 256x192) against CPU-minutes, and
writes the EMA weights as a diffusers folder ``OUTPUT/vae`` on every evaluation.

    python examples/recipes/train_backbone.py --output runs/backbone --minutes 120
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

from pyratok_hf import PyraTokConfig
from pyratok_hf.modeling_pyratok import set_single_frame_fast_path
from pyratok_hf.training.run_state import has_run_state, load_run_state, save_run_state
from pyratok_hf.training.real_data import RealPictureStream, heldout_real_clips, load_city_shots, psnr


def cpu_minutes() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) / 60.0


def build_vae(base_dim: int, decoder_base_dim: int | None):
    from diffusers import AutoencoderKLWan

    backbone = dict(PyraTokConfig.from_preset("pyratok-tiny").backbone_config)
    backbone["base_dim"] = base_dim
    backbone["decoder_base_dim"] = decoder_base_dim
    return AutoencoderKLWan(**backbone)


def reconstruct(vae, clip: torch.Tensor) -> torch.Tensor:
    z = vae._encode(clip[None].to(vae.device))[:, : vae.config.z_dim]
    return vae._decode(z).sample[0].cpu()


@torch.no_grad()
def evaluate(vae, clips) -> dict:
    vae.eval()
    set_single_frame_fast_path(vae, False)
    scores = {name: psnr(reconstruct(vae, clip), clip) for name, clip in clips}
    vae.train()
    return {"mean": sum(scores.values()) / len(scores), "per_clip": scores}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="runs/backbone")
    parser.add_argument("--minutes", type=float, default=120.0, help="wall-clock budget of this invocation")
    parser.add_argument("--max-steps", type=int, default=10**9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (the run state is saved on the CPU, so runs move between devices)")
    parser.add_argument("--base-dim", type=int, default=16)
    parser.add_argument("--decoder-base-dim", type=int, default=None)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--mse-weight", type=float, default=1.0)
    parser.add_argument("--image-steps", type=int, default=3000, help="steps of images only before clips join")
    parser.add_argument("--video-every", type=int, default=3, help="after --image-steps, one clip batch every N steps")
    parser.add_argument("--video-frames", type=int, default=9)
    parser.add_argument("--video-batch", type=int, default=4)
    parser.add_argument("--eval-every", type=float, default=8.0, help="minutes between held-out evaluations")
    parser.add_argument("--eval-frames", type=int, default=17)
    parser.add_argument("--city-clip", default=os.environ.get("PYRATOK_CITY_CLIP"), help="path to cityCC0.mpg (optional)")
    parser.add_argument("--save-every", type=float, default=3.0, help="minutes between run-state checkpoints")
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    shots = load_city_shots(args.city_clip) if args.city_clip else None
    stream = RealPictureStream(shots, seed=args.seed)
    clips = heldout_real_clips(shots, num_frames=args.eval_frames)
    (out / "sources.json").write_text(json.dumps({"train": [vars(s) for s in stream.sources], "heldout": [n for n, _ in clips]}, indent=1))

    torch.manual_seed(args.seed)
    vae = build_vae(args.base_dim, args.decoder_base_dim).to(args.device)
    ema = copy.deepcopy(vae).requires_grad_(False)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))
    step, cpu_before = 0, 0.0
    if has_run_state(out) and not args.no_resume:
        tensors, meta = load_run_state(out, optimizer)
        vae.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        step, cpu_before = meta["step"], meta["cpu_minutes"]
        print(f"resumed at step {step} ({cpu_before:.1f} CPU-min)", flush=True)
    set_single_frame_fast_path(vae, True)
    vae.train()
    curve = out / "curve.jsonl"

    def log_eval():
        result = evaluate(ema, clips)
        raw = evaluate(vae, clips)["mean"]
        set_single_frame_fast_path(vae, True)
        record = {"step": step, "cpu_minutes": round(cpu_before + cpu_minutes(), 2), "psnr_ema": round(result["mean"], 3), "psnr_raw": round(raw, 3),
                  "per_clip": {k: round(v, 2) for k, v in result["per_clip"].items()},
                  "phase": "images" if step < args.image_steps else "images+clips"}
        with open(curve, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(json.dumps({k: v for k, v in record.items() if k != "per_clip"}), flush=True)
        ema.save_pretrained(out / "vae.partial", safe_serialization=True)
        if (out / "vae").exists():
            import shutil

            shutil.rmtree(out / "vae")
        os.replace(out / "vae.partial", out / "vae")

    def save_state():
        tensors = {**{f"model.{k}": v for k, v in vae.state_dict().items()}, **{f"ema.{k}": v for k, v in ema.state_dict().items()}}
        save_run_state(out, tensors, optimizer, {"step": step, "cpu_minutes": cpu_before + cpu_minutes(), "args": vars(args)})

    if step == 0:
        log_eval()
    start = last_eval = last_save = time.time()
    while step < args.max_steps and (time.time() - start) / 60 < args.minutes:
        lr = args.lr * min(1.0, (step + 1) / args.warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if step >= args.image_steps and step % args.video_every == 0:
            x = stream.videos(step, args.video_batch, args.video_frames, args.crop)
        else:
            x = stream.images(step, args.batch, args.crop)
        x = x.to(args.device, non_blocking=True)
        z = vae._encode(x)[:, : vae.config.z_dim]
        recon = vae._decode(z).sample
        diff = recon - x
        loss = diff.abs().mean() + args.mse_weight * diff.pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), vae.parameters()):
                # Warm-up of the average (as in timm/diffusers EMA): early on the average follows the weights.
                pe.lerp_(p, 1 - min(args.ema, (1 + step) / (10 + step)))
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} {(time.time() - start) / 60:.1f} min", flush=True)
        if (time.time() - last_eval) / 60 >= args.eval_every:
            save_state()
            log_eval()
            last_eval = last_save = time.time()
        elif (time.time() - last_save) / 60 >= args.save_every:
            save_state()
            last_save = time.time()
    save_state()
    log_eval()
    return 0


if __name__ == "__main__":
    sys.exit(main())
