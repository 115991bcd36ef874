"""Peak memory vs resolution with spatial tiling (fixed tile size), an 8K round trip, and tiled-vs-untiled quality.

Every case runs in its own subprocess and reports the peak RSS *above* a baseline that already holds the model,
the input clip and (for streaming) a uint8 output buffer, i.e. the working memory the tokenizer needs for the
round trip (tokenize + reconstruct). Modes:

* ``whole``: ``model.encode`` + ``model.decode(token_ids=...)`` with ``model.enable_tiling()`` (256 px tiles,
  192 px stride). The float32 reconstruction of the whole clip is part of what it allocates.
* ``stream``: :func:`pyratok_hf.modeling_pyratok.encode_streaming` chained into ``decode_streaming`` (one latent frame per
  chunk) with the same tiles; each decoded chunk is written into the uint8 buffer, as a video writer would.
* ``untiled``: ``model.encode`` + ``model.decode`` without tiling (only where it fits).

    python benchmarks/bench_tiling_memory.py                 # 720p + 4K (5 frames), streaming, PSNR check
    python benchmarks/bench_tiling_memory.py --only-8k       # the 4320x7680 round trip
    python benchmarks/bench_tiling_memory.py --clip-length   # memory vs clip length: streaming vs whole clip
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


def length_worker(spec: dict) -> dict:
    """Peak memory of tokenizing a clip of ``latent_frames`` latent frames, streamed or whole (no tiling)."""
    import torch

    from pyratok_hf.modeling_pyratok import encode_streaming

    model = C.load_model(spec.get("model"), "pyratok-tiny")
    frames = 1 + 4 * (spec["latent_frames"] - 1)
    size = spec["size"]

    def frame_source():  # frames made on the fly, as a decoder reading a file would deliver them
        for t in range(frames):
            yield synthetic_clip(1, size, size)[:, :, 0] if t % 2 == 0 else -synthetic_clip(1, size, size)[:, :, 0]

    clip = torch.stack(list(frame_source()), dim=2) if spec["mode"] == "whole" else None

    def tokenize():
        with torch.inference_mode():
            if clip is not None:
                return model.encode(clip).token_ids[-1].shape
            for _ in encode_streaming(model, frame_source(), chunk_latent_frames=1):
                pass
            return None

    with torch.inference_mode():  # warm-up on a short clip: one-time allocations (thread pools, kernel caches)
        model.encode(synthetic_clip(5, size, size))
        list(encode_streaming(model, synthetic_clip(5, size, size), chunk_latent_frames=1))
    _, memory = C.measure_peak_rss(tokenize)
    with C.tensor_peak_tracker() as tracker:
        tokenize()
    return {**spec, **memory, "tensor_peak_mb": tracker.peak / 2**20}


def clip_length_sweep(args) -> None:
    results = []
    for latent_frames in (5, 9, 17, 33):
        for mode in ("stream", "whole"):
            spec = {"length": True, "mode": mode, "latent_frames": latent_frames, "size": 64, "model": args.model, "threads": args.threads}
            results.append(C.run_worker(__file__, spec, timeout=3600, threads=args.threads))
            print("  ", mode, latent_frames, {k: results[-1].get(k) for k in ("peak_rss_delta_mb", "tensor_peak_mb", "error")}, flush=True)
    rows = []
    for latent_frames in (5, 9, 17, 33):
        pair = {r["mode"]: r for r in results if r.get("latent_frames") == latent_frames and "error" not in r}
        rows.append([f"{1 + 4 * (latent_frames - 1)} frames ({latent_frames} latent)"] + [
            f"{C.fmt(pair[m]['tensor_peak_mb'], suffix=' MB')} / {C.fmt(pair[m]['peak_rss_delta_mb'], suffix=' MB')}" if m in pair else "n/a"
            for m in ("stream", "whole")
        ])  # fmt: skip
    table = C.print_table(
        "Tokenizer memory vs clip length, 64x64 frames (peak live tensors / peak RSS above baseline)",
        ["clip", "encode_streaming (1 latent frame per chunk)", "model.encode (whole clip)"],
        rows,
    )
    C.write_results("bench_clip_length_memory", {"command": " ".join(["python"] + sys.argv), "machine": C.machine_info(args.threads),
                                                 "results": results, "table": table})  # fmt: skip
    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for mode, marker in (("stream", "o"), ("whole", "s")):
        points = sorted((r["latent_frames"], r["tensor_peak_mb"]) for r in results if r.get("mode") == mode and "error" not in r)
        ax.plot([1 + 4 * (n - 1) for n, _ in points], [m for _, m in points], marker=marker,
                label="encode_streaming" if mode == "stream" else "model.encode (whole clip)")  # fmt: skip
    ax.set_xlabel("frames in the clip (64x64)")
    ax.set_ylabel("peak live tensor MB")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Tokenizer memory vs clip length", fontsize=10)
    print("plot:", C.save_plot(fig, "perf_memory_vs_clip_length"))


def worker(spec: dict) -> dict:
    import torch

    if spec.get("length"):
        return length_worker(spec)

    from pyratok_hf.modeling_pyratok import decode_streaming, encode_streaming

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
    parser.add_argument("--only-8k", action="store_true", help="only the 4320x7680 round trip (results in bench_tiling_memory_8k.json)")
    parser.add_argument("--clip-length", action="store_true", help="only memory vs clip length, streamed vs whole (64x64 frames)")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from benchmarks/results/*.json")
    args = parser.parse_args()
    if args.replot:
        import json

        _plot(json.loads((C.RESULTS_DIR / "bench_tiling_memory.json").read_text())["results"])
        return
    if args.clip_length:
        clip_length_sweep(args)
        return
    sizes = [(360, 640), (720, 1280)] if args.quick else [(720, 1280), (2160, 3840)]
    cases = []
    if args.only_8k:
        sizes = [(4320, 7680)]
        cases.append({"mode": "whole", "height": 4320, "width": 7680, "frames": args.frames})
    else:
        cases += [{"mode": "whole", "height": h, "width": w, "frames": args.frames} for h, w in sizes]
        # Streaming keeps one causal cache per tile (2 frames of every conv input): constant in T, but ~KB per pixel.
        cases += [{"mode": "stream", "height": h, "width": w, "frames": args.frames} for h, w in ((360, 640), (720, 1280))]
        cases.append({"mode": "untiled", "height": 720 if not args.quick else 360, "width": 1280 if not args.quick else 640, "frames": args.frames})
    # Tiled vs untiled quality is read from the runs at this size (both fit untiled).
    quality_size = (360, 640) if args.quick else (720, 1280)
    results = []
    for case in cases:
        spec = {**case, "model": args.model, "threads": args.threads}
        if (case["height"], case["width"]) == quality_size and case["mode"] in ("whole", "untiled"):
            spec["psnr"] = str(C.RESULTS_DIR / f".recon_{case['mode']}.pt")
        print(f"running {case} ...", flush=True)
        results.append(C.run_worker(__file__, spec, timeout=3 * 3600, threads=args.threads))
        print("  ->", {k: results[-1].get(k) for k in ("peak_rss_delta_mb", "seconds", "error")}, flush=True)

    by_key = {(r.get("mode"), r.get("height")): r for r in results if "error" not in r}
    rows = []
    for r, case in zip(results, cases):
        base = by_key.get(("whole", sizes[0][0])) if case["mode"] == "whole" else by_key.get((case["mode"], min(r.get("height", 1e9) for r in results if r.get("mode") == case["mode"])))
        ratio = r["peak_rss_delta_mb"] / base["peak_rss_delta_mb"] if base and "error" not in r else None
        rows.append([
            f"{case['height']}x{case['width']}x{case['frames']}", case["mode"],
            C.fmt(r.get("input_mb"), suffix=" MB") if "error" not in r else "-",
            C.fmt(r.get("peak_rss_delta_mb"), suffix=" MB") if "error" not in r else r["error"],
            C.fmt(ratio, suffix="x") if ratio else "-",
            f"{case['height'] * case['width'] / (sizes[0][0] * sizes[0][1]):.2g}x",
            C.fmt(r.get("seconds"), suffix=" s") if "error" not in r else "-",
        ])  # fmt: skip
    table = C.print_table(
        f"Peak working memory of tokenize + reconstruct (tiles {TILE}px, stride {STRIDE}px, {args.threads} thread)",
        ["clip", "mode", "input clip", "peak RSS above baseline", "vs smallest, same mode", "pixels vs first", "time"],
        rows,
    )  # fmt: skip

    if args.only_8k:
        C.write_results("bench_tiling_memory_8k", {"command": " ".join(["python"] + sys.argv), "machine": C.machine_info(args.threads),
                                                   "tile": TILE, "stride": STRIDE, "results": results, "table": table})  # fmt: skip
        return
    quality = {r["mode"]: r for r in results if "psnr_db" in r}
    import torch

    psnr_table = ""
    if "whole" in quality and "untiled" in quality:
        a = torch.load(str(C.RESULTS_DIR / ".recon_untiled.pt"))
        b = torch.load(str(C.RESULTS_DIR / ".recon_whole.pt"))
        between = psnr(a, b)
        for mode in ("untiled", "whole"):
            os.remove(str(C.RESULTS_DIR / f".recon_{mode}.pt"))
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


def _plot(results, sizes=None) -> None:
    """Memory and time vs frame size; adds the 8K run from bench_tiling_memory_8k.json when present."""
    import json

    extra = C.RESULTS_DIR / "bench_tiling_memory_8k.json"
    if extra.is_file():
        results = list(results) + [dict(r, label_8k=True) for r in json.loads(extra.read_text())["results"] if "error" not in r]
    plt = C.pyplot()
    fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = {"whole": "whole clip, tiled", "stream": "streamed + tiled", "untiled": "whole clip, untiled"}
    for mode, marker in (("whole", "s"), ("stream", "o"), ("untiled", "^")):
        points = sorted((r["height"] * r["width"] / 1e6, r) for r in results if r.get("mode") == mode and "error" not in r)
        if not points:
            continue
        ax_mem.plot([p for p, _ in points], [r["peak_rss_delta_mb"] for _, r in points], marker=marker, label=labels[mode])
        ax_time.plot([p for p, _ in points], [r["seconds"] / r["frames"] for _, r in points], marker=marker, label=labels[mode])
        for p, r in points:
            if r.get("label_8k"):
                ax_mem.annotate(f"8K, {r['frames']} frame", (p, r["peak_rss_delta_mb"]), textcoords="offset points", xytext=(-30, 8), fontsize=7)
    inputs = sorted({(r["height"] * r["width"] / 1e6, r["input_mb"] / r["frames"] * 5) for r in results if "input_mb" in r})
    ax_mem.plot([p for p, _ in inputs], [m for _, m in inputs], linestyle=":", color="gray", label="a 5-frame float32 clip")
    ticks = sorted({r["height"] * r["width"] / 1e6 for r in results if "error" not in r})
    names = {640 * 360: "360p", 1280 * 720: "720p", 3840 * 2160: "4K", 7680 * 4320: "8K"}
    for ax, title, unit in ((ax_mem, "peak RSS above baseline (model + input)", "MB"), (ax_time, "round-trip time per frame", "s")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ticks, [names.get(round(t * 1e6), f"{t:.2g} MP") for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("frame size")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    ax_mem.legend(fontsize=8)
    fig.suptitle(f"pyratok-tiny tokenize + reconstruct vs resolution ({TILE}px tiles, stride {STRIDE}px, 1 CPU thread)", fontsize=10)
    print("plot:", C.save_plot(fig, "perf_tiling_memory_vs_resolution"))


if __name__ == "__main__":
    if not C.worker_main(worker):
        main()
