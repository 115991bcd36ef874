"""Train pyratok-tiny's tokenizer (LaPQ + the decoder) on a trained tiny backbone, on real pictures.

Why the decoder trains here: the frozen decoder was fitted to continuous latents, and at pyratok-tiny's
rate (16 bits per token, ~0.1 bits per pixel) the quantized latent is far from them; adapting the decoder
to quantized latents is the paper's stage 3 ("full fine-tune"), and it is what moves tokens -> video PSNR
(measured in ``docs/training.md``). The encoder stays frozen, so its backward pass is never computed,
which halves the cost of a step on a CPU; ``--lora`` adds the paper's LoRA adapters to it instead.

Before training, the latent normalisation (``latents_mean`` / ``latents_std``) is measured on the
backbone's own latents: a Wan VAE's default statistics describe Wan 2.1, not this backbone.

    python examples/recipes/train_tokenizer.py --backbone runs/backbone --output runs/tokenizer --minutes 60
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import torch

from pyratok_hf import PyraTokConfig, PyraTokModel
from pyratok_hf.modeling_pyratok import set_single_frame_fast_path
from pyratok_hf.training.run_state import has_run_state, load_run_state, save_run_state
from pyratok_hf.training.real_data import RealPictureStream, heldout_real_clips, load_city_shots, psnr


def cpu_minutes() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) / 60.0


@torch.no_grad()
def latent_statistics(vae, stream: RealPictureStream, batches: int = 8) -> tuple[list[float], list[float]]:
    """Per-channel mean / std of the posterior mode over real training crops and clips."""
    chunks = []
    for i in range(batches):
        x = stream.images(10_000_000 + i, 16, 64) if i % 2 == 0 else stream.videos(10_000_000 + i, 4, 9, 64)
        z = vae._encode(x.to(vae.device))[:, : vae.config.z_dim]
        chunks.append(z.transpose(0, 1).reshape(z.shape[1], -1))
    flat = torch.cat(chunks, dim=1)
    return [round(float(v), 5) for v in flat.mean(1)], [round(float(v), 5) for v in flat.std(1).clamp_min(1e-4)]


@torch.no_grad()
def evaluate(model, clips, continuous: bool = False) -> dict:
    model.eval()
    scores, bpp, backbone = {}, None, {}
    vae = model.backbone.vae
    for name, clip in clips:
        if continuous:
            backbone[name] = psnr(vae._decode(vae._encode(clip[None].to(vae.device))[:, : vae.config.z_dim]).sample[0].cpu(), clip)
        enc = model.encode(clip[None])
        recon = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample[0].cpu()
        scores[name] = psnr(recon, clip)
        bits = sum(ids.numel() for ids in enc.token_ids) * model.config.codebook_bits
        bpp = bits / (clip.shape[1] * clip.shape[2] * clip.shape[3])
    model.train()
    result = {"mean": sum(scores.values()) / len(scores), "per_clip": scores, "bpp": bpp}
    if backbone:
        result["backbone_mean"] = sum(backbone.values()) / len(backbone)
    return result


def lr_anneal(args, elapsed_minutes: float) -> float:
    """1 until the last ``--decay-minutes`` of the run, then linearly down to 0.1: a final anneal settles the weights
    that a constant learning rate keeps jittering (measured in docs/training.md)."""
    if args.decay_minutes <= 0:
        return 1.0
    remaining = args.minutes - elapsed_minutes
    return max(0.1, min(1.0, remaining / args.decay_minutes))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True, help="a backbone run folder holding vae/ (examples/recipes/train_backbone.py)")
    parser.add_argument("--output", default="runs/tokenizer")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--max-steps", type=int, default=10**9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (the run state is saved on the CPU, so runs move between devices)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--decoder-lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--decay-minutes", type=float, default=0.0,
                        help="anneal the learning rate linearly to 10%% over the last N minutes of --minutes")
    parser.add_argument("--mse-weight", type=float, default=1.0)
    parser.add_argument("--no-train-decoder", action="store_true", help="keep the decoder frozen (the paper's stages 1-2)")
    parser.add_argument("--train-encoder", action="store_true", help="train the encoder too (the paper's stage 3, full fine-tune)")
    parser.add_argument("--lora", action="store_true", help="LoRA adapters in the frozen encoder (rank 16, alpha 32)")
    parser.add_argument("--continuous-every", type=int, default=4,
                        help="every N steps the decoder also reconstructs from the continuous latent, so the bundled "
                        "backbone (encode -> mode -> decode) stays a good continuous VAE; 0 turns it off")
    parser.add_argument("--image-steps", type=int, default=1500)
    parser.add_argument("--video-every", type=int, default=3)
    parser.add_argument("--video-frames", type=int, default=9)
    parser.add_argument("--video-batch", type=int, default=4)
    parser.add_argument("--eval-every", type=float, default=12.0)
    parser.add_argument("--eval-clips", type=int, default=None, help="evaluate on the first N held-out clips only")
    parser.add_argument("--preset", default="pyratok-tiny")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="PyraTokConfig overrides, e.g. num_levels=2")
    parser.add_argument("--city-clip", default=os.environ.get("PYRATOK_CITY_CLIP"))
    parser.add_argument("--save-every", type=float, default=3.0, help="minutes between run-state checkpoints")
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    shots = load_city_shots(args.city_clip) if args.city_clip else None
    stream = RealPictureStream(shots, seed=args.seed + 1)
    clips = heldout_real_clips(shots, num_frames=17)[: args.eval_clips]

    torch.manual_seed(args.seed)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = PyraTokConfig.from_preset(args.preset, **overrides)
    model = PyraTokModel.from_backbone(config, args.backbone, subfolder="vae").to(args.device)
    resuming = has_run_state(out) and not args.no_resume
    if not resuming:  # a resumed run restores the statistics it was trained with
        model.config.latents_mean, model.config.latents_std = latent_statistics(model.backbone.vae, stream)
    model.backbone.requires_grad_(False)
    decoder_params = []  # the backbone's own weights (decoder, and the encoder with --train-encoder): lower lr
    if not args.no_train_decoder:
        for module in (model.backbone.vae.decoder, model.backbone.vae.post_quant_conv):
            module.requires_grad_(True)
            decoder_params += list(module.parameters())
    if args.train_encoder:
        for module in (model.backbone.vae.encoder, model.backbone.vae.quant_conv):
            module.requires_grad_(True)
            decoder_params += list(module.parameters())
    elif args.lora:
        model.backbone.add_lora(rank=16, alpha=32)
    decoder_ids = {id(p) for p in decoder_params}
    other = [p for p in model.parameters() if p.requires_grad and id(p) not in decoder_ids]
    groups = [{"params": other, "lr": args.lr, "base_lr": args.lr}]
    if decoder_params:
        groups.append({"params": decoder_params, "lr": args.decoder_lr, "base_lr": args.decoder_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0, betas=(0.9, 0.99))
    trainable = [p for g in groups for p in g["params"]]
    ema = [p.detach().clone() for p in trainable]
    step, cpu_before = 0, 0.0
    if resuming:
        tensors, state = load_run_state(out, optimizer)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        for e, saved in zip(ema, (tensors[f"ema.{i}"] for i in range(len(ema)))):
            e.copy_(saved)
        model.config.latents_mean, model.config.latents_std = state["latents_mean"], state["latents_std"]
        step, cpu_before = state["step"], state["cpu_minutes"]
        print(f"resumed at step {step} ({cpu_before:.1f} CPU-min)", flush=True)
    print(f"trainable parameters: {sum(p.numel() for p in trainable) / 1e6:.2f} M; latents_std {model.config.latents_std}", flush=True)
    set_single_frame_fast_path(model.backbone.vae, True)
    model.train()
    curve = out / "curve.jsonl"

    def swap_ema():
        for p, e in zip(trainable, ema):
            tmp = p.detach().clone()
            p.data.copy_(e)
            e.copy_(tmp)

    def log_eval():
        set_single_frame_fast_path(model.backbone.vae, False)
        swap_ema()
        result = evaluate(model, clips, continuous=not args.no_train_decoder)
        if not args.lora:  # with adapters the saved folder is written once, merged, at the end
            model.save_pretrained(out / "model.partial", safe_serialization=True)
            if (out / "model").exists():
                shutil.rmtree(out / "model")
            os.replace(out / "model.partial", out / "model")
        swap_ema()
        set_single_frame_fast_path(model.backbone.vae, True)
        record = {"step": step, "cpu_minutes": round(cpu_before + cpu_minutes(), 2), "psnr_tokens_ema": round(result["mean"], 3), "psnr_backbone_ema": round(result.get("backbone_mean", float("nan")), 3),
                  "bpp": result["bpp"], "per_clip": {k: round(v, 2) for k, v in result["per_clip"].items()}}
        with open(curve, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(json.dumps({k: v for k, v in record.items() if k != "per_clip"}), flush=True)

    def save_state():
        tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()}, **{f"ema.{i}": e for i, e in enumerate(ema)}}
        save_run_state(out, tensors, optimizer, {"step": step, "latents_mean": model.config.latents_mean, "latents_std": model.config.latents_std,
                                                 "cpu_minutes": cpu_before + cpu_minutes(), "args": vars(args)})

    if step == 0:
        log_eval()
    start = last_eval = last_save = time.time()
    while step < args.max_steps and (time.time() - start) / 60 < args.minutes:
        warm = min(1.0, (step + 1) / args.warmup) * lr_anneal(args, (time.time() - start) / 60)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * warm
        if step >= args.image_steps and step % args.video_every == 0:
            x = stream.videos(step, args.video_batch, args.video_frames, args.crop)
        else:
            x = stream.images(step, args.batch, args.crop)  # [B, 3, 1, H, W]
        x = x.to(args.device, non_blocking=True)
        # One encoder pass feeds both decodes: tokens -> video (the tokenizer) and, every few steps, the
        # continuous latent -> video (so the saved backbone stays a good continuous VAE).
        enc = model.encode(x)
        recon = model.decode(latents=enc.latents, output_shape=enc.input_shape).sample
        loss, *_ = model.compute_losses(x, enc, recon, None)
        mse = (recon - x).pow(2).mean()
        loss = loss + model.config.recon_weight * args.mse_weight * mse
        if args.continuous_every and not args.no_train_decoder and step % args.continuous_every == 0:
            latent = enc.continuous_latents if args.train_encoder else enc.continuous_latents.detach()
            recon_c = model.decode(latents=latent, output_shape=enc.input_shape).sample
            loss = loss + (recon_c - x).abs().mean() + args.mse_weight * (recon_c - x).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        with torch.no_grad():
            decay = args.ema if step > args.warmup else 0.0
            for e, p in zip(ema, trainable):
                e.lerp_(p.detach(), 1 - decay)
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} mse {mse.item():.4f} {(time.time() - start) / 60:.1f} min", flush=True)
        if (time.time() - last_eval) / 60 >= args.eval_every:
            save_state()
            log_eval()
            last_eval = last_save = time.time()
        elif (time.time() - last_save) / 60 >= args.save_every:
            save_state()
            last_save = time.time()
    save_state()
    log_eval()
    if args.lora:
        swap_ema()
        model.backbone.merge_lora()
        model.save_pretrained(out / "model", safe_serialization=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
