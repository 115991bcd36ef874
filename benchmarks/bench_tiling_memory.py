"""Peak memory vs resolution with spatial tiling (fixed tile size), an 8K round trip, and tiled-vs-untiled quality.

Every case runs in its own subprocess and reports the peak RSS *above* a baseline that already holds the model,
the input clip and (for streaming) a uint8 output buffer, i.e. the working memory the tokenizer needs for the
round trip (tokenize + reconstruct). Modes:

* ``whole``: ``model.encode`` + ``model.decode(token_ids=...)`` with ``model.enable_tiling()`` (256 px tiles,
  192 px stride). The float32 reconstruction of the whole clip is part of what it allocates.
* ``stream``: :func:`pyratok_hf.streaming.encode_streaming` chained into ``decode_streaming`` (one latent frame per
  chunk) with the same tiles; each decoded chunk is written into the uint8 buffer, as a video writer would.
* ``untiled``: ``model.encode`` + ``model.decode`` without tiling (only where it fits).

    python benchmarks/bench_tiling_memory.py                 # 720p + 4K (5 frames) + 8K stream + PSNR check
    python benchmarks/bench_tiling_memory.py --quick         # 360p + 720p + PSNR check (no 4K / 8K)
    python benchmarks/bench_tiling_memory.py --model DIR     # a trained tokenizer instead of random weights
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TILE, STRIDE = 256, 192


def synthetic_clip(frames: int, height: int, width: int):
    """A smooth moving pattern in [-1, 1] (gradients + a drifting disc), built frame by frame to keep memory low."""
    import torch

    clip = torch.empty(1, 3, frames, height, width)
    ys = torch.linspace(-1, 1, height).view(height, 1)
    xs = torch.linspace(-1, 1, width).view(1, width)
    for t in range(frames):
        shift = 0.15 * t
        disc = (((xs - 0.5 + shift) ** 2 + (ys * height / width) ** 2) < 0.05).float()
        clip[0, 0, t] = torch.sin(3 * (xs + shift)) * 0.6 + disc * 0.3
        clip[0, 1, t] = torch.cos(2 * (ys - shift)) * 0.6 - disc * 0.3
        clip[0, 2, t] = torch.sin(2 * (xs + ys) + shift) * 0.5
    return clip.clamp_(-1, 1)


def psnr(a, b) -> float:
    mse = float(((a.float() - b.float()) / 2).pow(2).mean())  # pixels in [-1, 1] -> peak-to-peak 2
    return 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def worker(spec: dict) -> dict:
    import torch

    from pyratok_hf.streaming import decode_streaming, encode_streaming

    model = C.load_model(spec.get("model"), "pyratok-tiny")
    frames, height, width = spec["frames"], spec["height"], spec["width"]
    mode = spec["mode"]
    if mode != "untiled":
        model.enable_tiling(TILE, TILE, STRIDE, STRIDE)
    clip = synthetic_clip(frames, height, width)
    output = torch.empty(frames, height, width, 3, dtype=torch.uint8) if mode == "stream" else None

    def roundtrip():
        with torch.inference_mode():
            if mode == "stream":
                written = 0
                chunks = encode_streaming(model, clip, chunk_latent_frames=1)
                for piece in decode_streaming(model, chunks, output_shape=(frames, height, width)):
                    n = piece.shape[2]
                    output[written : written + n] = ((piece[0].permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
                    written += n
                return None
            enc = model.encode(clip)
            return model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample

    start = time.perf_counter()
    reconstruction, memory = C.measure_peak_rss(roundtrip)
    seconds = time.perf_counter() - start
    result = {**spec, **memory, "seconds": seconds, "input_mb": clip.numel() * 4 / 2**20}
    if spec.get("psnr"):
        if reconstruction is None:
            reconstruction = output.permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1
        result["psnr_db"] = psnr(reconstruction, clip)
        torch.save(reconstruction.to(torch.float16), spec["psnr"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="360p and 720p only (no 4K/8K)")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--model", default=None, help="tokenizer folder (default: pyratok-tiny with random weights)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1: the machine is shared)")
    parser.add_argument("--skip-8k", action="store_true")
    args = parser.parse_args()
    sizes = [(360, 640), (720, 1280)] if args.quick else [(720, 1280), (2160, 3840)]
    cases = []
    for height, width in sizes:
        for mode in ("stream", "whole"):
            cases.append({"mode": mode, "height": height, "width": width, "frames": args.frames})
    cases.append({"mode": "untiled", "height": sizes[0][0], "width": sizes[0][1], "frames": args.frames})
    if not args.quick and not args.skip_8k:
        cases.append({"mode": "stream", "height": 4320, "width": 7680, "frames": args.frames})
    results = []
    for case in cases:
        spec = {**case, "model": args.model, "threads": args.threads}
        print(f"running {case} ...", flush=True)
        results.append(C.run_worker(__file__, spec, timeout=3 * 3600, threads=args.threads))
        print("  ->", {k: results[-1].get(k) for k in ("peak_rss_delta_mb", "seconds", "error")}, flush=True)

    by_key = {(r.get("mode"), r.get("height")): r for r in results if "error" not in r}
    rows = []
    for r, case in zip(results, cases):
        base = by_key.get((case["mode"], sizes[0][0]))
        ratio = r["peak_rss_delta_mb"] / base["peak_rss_delta_mb"] if base and "error" not in r else None
        rows.append([
            f"{case['height']}x{case['width']}x{case['frames']}", case["mode"],
            C.fmt(r.get("input_mb"), suffix=" MB") if "error" not in r else "-",
            C.fmt(r.get("peak_rss_delta_mb"), suffix=" MB") if "error" not in r else r["error"],
            C.fmt(ratio, suffix="x") if ratio else "-",
            f"{case['height'] * case['width'] / (sizes[0][0] * sizes[0][1]):.0f}x",
            C.fmt(r.get("seconds"), suffix=" s") if "error" not in r else "-",
        ])  # fmt: skip
    table = C.print_table(
        f"Peak working memory of tokenize + reconstruct (tiles {TILE}px, stride {STRIDE}px, {args.threads} thread)",
        ["clip", "mode", "input clip", "peak RSS above baseline", f"vs {sizes[0][0]}p same mode", "pixels vs smallest", "time"],
        rows,
    )  # fmt: skip

    # Tiled vs untiled quality on a clip where both fit.
    quality_size = (368, 640) if args.quick else (736, 1280)
    quality = {}
    for mode in ("untiled", "whole"):
        path = str(C.RESULTS_DIR / f".recon_{mode}.pt")
        spec = {"mode": mode, "height": quality_size[0], "width": quality_size[1], "frames": args.frames, "model": args.model,
                "threads": args.threads, "psnr": path}  # fmt: skip
        quality[mode] = C.run_worker(__file__, spec, timeout=3 * 3600, threads=args.threads)
    import torch

    psnr_table = ""
    if all("psnr_db" in q for q in quality.values()):
        a = torch.load(str(C.RESULTS_DIR / ".recon_untiled.pt"))
        b = torch.load(str(C.RESULTS_DIR / ".recon_whole.pt"))
        between = psnr(a, b)
        for mode in quality:
            os.remove(str(C.RESULTS_DIR / f".recon_{mode if mode != 'whole' else 'whole'}.pt"))
        quality["tiled_vs_untiled_psnr_db"] = between
        psnr_table = C.print_table(
            f"Tiled vs untiled reconstruction, {quality_size[0]}x{quality_size[1]}x{args.frames} ({'given model' if args.model else 'random weights'})",
            ["", "PSNR vs input", "tiled - untiled"],
            [["untiled", C.fmt(quality["untiled"]["psnr_db"], 4, " dB"), ""],
             ["tiled", C.fmt(quality["whole"]["psnr_db"], 4, " dB"), f"{quality['whole']['psnr_db'] - quality['untiled']['psnr_db']:+.3f} dB"],
             ["tiled recon vs untiled recon", C.fmt(between, 4, " dB"), ""]],
        )  # fmt: skip
    C.write_results("bench_tiling_memory", {
        "command": " ".join(["python"] + sys.argv), "machine": C.machine_info(args.threads), "tile": TILE, "stride": STRIDE,
        "model": args.model or "pyratok-tiny (random weights)", "results": results, "quality": quality, "table": table + psnr_table,
    })  # fmt: skip
    _plot(results, sizes)


def _plot(results, sizes) -> None:
    plt = C.pyplot()
    fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(10, 3.8))
    for mode, marker in (("stream", "o"), ("whole", "s"), ("untiled", "^")):
        points = sorted((r["height"] * r["width"] / 1e6, r) for r in results if r.get("mode") == mode and "error" not in r)
        if not points:
            continue
        ax_mem.plot([p for p, _ in points], [r["peak_rss_delta_mb"] for _, r in points], marker=marker, label=mode)
        ax_time.plot([p for p, _ in points], [r["seconds"] for _, r in points], marker=marker, label=mode)
    inputs = sorted((r["height"] * r["width"] / 1e6, r["input_mb"]) for r in results if r.get("mode") == "stream" and "error" not in r)
    if inputs:
        ax_mem.plot([p for p, _ in inputs], [m for _, m in inputs], linestyle=":", color="gray", label="input clip size")
    for ax, title, unit in ((ax_mem, "peak RSS above baseline", "MB"), (ax_time, "round-trip time", "s")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("megapixels per frame")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_mem.legend(fontsize=8)
    fig.suptitle(f"pyratok-tiny tokenize + reconstruct vs resolution (5 frames, {TILE}px tiles)", fontsize=10)
    print("plot:", C.save_plot(fig, "perf_tiling_memory_vs_resolution"))


if __name__ == "__main__":
    if not C.worker_main(worker):
        main()
