"""Encode / decode throughput (frames per second) and the speed knobs: dtype, torch.compile, batching, threads.

Part 1 measures frames/s of ``model.encode`` (tokenize) and ``model.decode(token_ids=...)`` (reconstruct) at
256x256, 1280x720 and 1920x1080 (tiled above 256 px tiles only when the frame exceeds ``max_pixels_untiled``;
1080p is tiled automatically). Part 2 compares knobs at 256x256 against float32 eager, batch 1: bf16 / fp16
autocast, ``compile_model`` (level blocks; level blocks + backbone blocks), batch 4, and more threads.
Variants of a part are timed interleaved in one process and reported as ratios to the baseline.

    python benchmarks/bench_throughput.py                           # pyratok-tiny on CPU, 5-frame clips
    python benchmarks/bench_throughput.py --quick                   # 256x256 and 720p only, fewer repeats
    python benchmarks/bench_throughput.py --device cuda --preset pyratok-l --dtype bf16   # GPU (not run here)
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device):
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def resolution_sweep(model, device, dtype, sizes, frames, batch, repeats) -> list[dict]:
    import torch

    from pyratok_hf.inference import inference_context

    rows = []
    for height, width in sizes:
        video = (torch.rand(batch, 3, frames, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
        enc_times, dec_times = [], []
        large = height * width >= 720 * 1280 and device.type == "cpu"  # minutes per call here: one timed call, no warm-up
        with inference_context(device, dtype):
            if not large:
                enc = model.encode(video)  # warm-up (kernel selection, first-touch allocations)
                model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape)
            for _ in range(1 if large else repeats):
                enc, seconds = _timed(lambda: model.encode(video), device)
                enc_times.append(seconds)
                _, seconds = _timed(lambda: model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape), device)
                dec_times.append(seconds)
        count = batch * frames
        rows.append({
            "height": height, "width": width, "frames": frames, "batch": batch, "tiled": model._needs_tiling(height, width),
            "encode_s": min(enc_times), "decode_s": min(dec_times),
            "encode_fps": count / min(enc_times), "decode_fps": count / min(dec_times),
        })  # fmt: skip
        print(f"  {height}x{width}: encode {rows[-1]['encode_fps']:.2f} fps, decode {rows[-1]['decode_fps']:.2f} fps", flush=True)
        del video, enc
    return rows


def knob_comparison(model, device, size, frames, repeats, threads) -> list[dict]:
    """Round-trip time of each knob relative to fp32 eager batch 1 (interleaved)."""
    import torch

    from pyratok_hf.inference import compile_model, inference_context

    height, width = size
    one = torch.rand(1, 3, frames, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1
    four = one.repeat(4, 1, 1, 1, 1)
    one, four = one.to(device), four.to(device)

    def roundtrip(m, video, dtype=None):
        def run():
            with inference_context(device, dtype):
                enc = m.encode(video)
                m.decode(token_ids=enc.token_ids, output_shape=enc.input_shape)

        return run

    variants = {
        "fp32 eager, batch 1 (baseline)": (roundtrip(model, one), 1),
        "bf16 autocast": (roundtrip(model, one, "bf16"), 1),
        "fp16 autocast": (roundtrip(model, one, "fp16"), 1),
        "batch 4 (per clip)": (roundtrip(model, four), 4),
    }
    compile_seconds = {}
    for label, backbone in (("torch.compile level blocks", False), ("torch.compile levels + backbone blocks", True)):
        compiled = compile_model(copy.deepcopy(model), backbone=backbone)
        start = time.perf_counter()
        try:
            roundtrip(compiled, one)()  # compilation happens here
        except Exception as error:  # noqa: BLE001 - report and continue: compile support varies by platform
            print(f"  {label}: failed ({type(error).__name__}: {str(error)[:200]})", flush=True)
            continue
        compile_seconds[label] = time.perf_counter() - start
        variants[label] = (roundtrip(compiled, one), 1)
    timings = C.time_calls({k: v[0] for k, v in variants.items()}, repeats=repeats, warmup=1)
    base_label = "fp32 eager, batch 1 (baseline)"
    rows = []
    for label, (_, clips) in variants.items():
        per_clip = timings[label]["min_s"] / clips
        speedup = clips * C.paired_ratio(timings, [base_label], [label])  # median of per-round ratios, per clip
        rows.append({"variant": label, "seconds_per_clip": per_clip, "speedup": speedup, "compile_s": compile_seconds.get(label)})
    if threads == 1 and device.type == "cpu" and (os.cpu_count() or 1) > 1:
        # Threads are process-wide, so this variant cannot be interleaved with the others: ratio of minima.
        torch.set_num_threads(os.cpu_count())
        timing = C.time_calls({"more": roundtrip(model, one)}, repeats=repeats, warmup=1)["more"]
        torch.set_num_threads(threads)
        base = timings[base_label]["min_s"]
        rows.append({"variant": f"fp32 eager, {os.cpu_count()} threads", "seconds_per_clip": timing["min_s"], "speedup": base / timing["min_s"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="pyratok-tiny", help="random-weight preset when --model is not given")
    parser.add_argument("--model", default=None, help="tokenizer folder")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"), help="dtype of the resolution sweep")
    parser.add_argument("--frames", type=int, default=5, help="frames per clip, 1 + 4k (default 5)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: the machine is shared)")
    parser.add_argument("--skip-knobs", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = C.load_model(args.model, args.preset).to(device)
    sizes = [(256, 256), (720, 1280)] if args.quick else [(256, 256), (720, 1280), (1080, 1920)]
    repeats = 2 if args.quick else 3
    print(f"resolution sweep ({args.preset if not args.model else args.model}, {device}, {args.dtype}):", flush=True)
    sweep = resolution_sweep(model, device, args.dtype, sizes, args.frames, args.batch_size, repeats)
    table = C.print_table(
        f"Throughput, {args.model or args.preset} ({'random weights' if not args.model else 'trained'}), {device}, {args.dtype}, "
        f"{args.frames}-frame clips, batch {args.batch_size}, {args.threads} thread(s)",
        ["frame size", "tiled", "encode s/clip", "encode frames/s", "decode s/clip", "decode frames/s"],
        [[f"{r['height']}x{r['width']}", "yes" if r["tiled"] else "no", C.fmt(r["encode_s"], suffix=" s"), C.fmt(r["encode_fps"]),
          C.fmt(r["decode_s"], suffix=" s"), C.fmt(r["decode_fps"])] for r in sweep],
    )  # fmt: skip
    name = "bench_throughput" if device.type == "cpu" else f"bench_throughput_{device.type}"
    payload = {"command": " ".join(["python"] + sys.argv), "machine": C.machine_info(args.threads), "device": str(device),
               "preset": args.preset, "model": args.model, "sweep": sweep, "knobs": [], "table": table}  # fmt: skip
    C.write_results(name, payload)  # the sweep is kept even if the knob comparison fails
    _plot(sweep, name)
    knobs = []
    if not args.skip_knobs:
        print("speed knobs at 256x256:", flush=True)
        knobs = knob_comparison(model, device, (256, 256), args.frames, repeats + 1, args.threads)
        table += C.print_table(
            f"Speed knobs, round trip of a {args.frames}x256x256 clip ({device}; ratios vs fp32 eager batch 1)",
            ["variant", "s per clip", "speedup", "compile time"],
            [[r["variant"], C.fmt(r["seconds_per_clip"], suffix=" s"), C.fmt(r["speedup"], suffix="x"),
              C.fmt(r.get("compile_s"), suffix=" s") if r.get("compile_s") else ""] for r in knobs],
        )  # fmt: skip
    C.write_results(name, {**payload, "knobs": knobs, "table": table})


def _plot(sweep, name) -> None:
    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    megapixels = [r["height"] * r["width"] / 1e6 for r in sweep]
    ax.plot(megapixels, [r["encode_fps"] for r in sweep], marker="o", label="encode (tokenize)")
    ax.plot(megapixels, [r["decode_fps"] for r in sweep], marker="s", label="decode (from ids)")
    for mp, r in zip(megapixels, sweep):
        ax.annotate(f"{r['height']}p", (mp, r["encode_fps"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("megapixels per frame")
    ax.set_ylabel("frames per second")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Throughput vs resolution", fontsize=10)
    print("plot:", C.save_plot(fig, f"perf_{name.replace('bench_', '')}_vs_resolution"))


if __name__ == "__main__":
    main()
