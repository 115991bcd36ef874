"""pyratok-tiny against x264 at the same number of bits, on the held-out real clips (17 frames, 256x192).

For each clip the tokenizer's bits (token ids x K) set the budget; x264 (``-preset medium``, yuv444p, raw
H.264 stream so no container overhead is counted) is run at the CRF whose stream is the largest that fits in
that budget. Prints PSNR of both, their ratio of bits, and the gap.

    python benchmarks/bench_vs_x264.py [--model PATH] [--city-clip cityCC0.mpg]

Results go to benchmarks/results/bench_vs_x264.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch


def x264_at_budget(frames_uint8: np.ndarray, budget_bits: float) -> tuple[float, float]:
    """(PSNR dB, bits) of the best x264 encoding that fits in ``budget_bits``."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    t, h, w, _ = frames_uint8.shape
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        raw_in = os.path.join(tmp, "in.rgb")
        frames_uint8.tofile(raw_in)
        for crf in range(10, 52):
            stream = os.path.join(tmp, f"c{crf}.264")
            subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25", "-i", raw_in,
                            "-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv444p", "-f", "h264", stream], check=True)
            bits = os.path.getsize(stream) * 8
            if bits <= budget_bits:
                decoded = subprocess.run([ffmpeg, "-loglevel", "error", "-i", stream, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
                out = np.frombuffer(decoded, dtype=np.uint8).reshape(-1, h, w, 3)[:t].astype(np.float64)
                mse = float(((out - frames_uint8.astype(np.float64)) ** 2).mean())
                best = (10 * np.log10(255.0**2 / max(mse, 1e-10)), bits)
                break
    return best if best is not None else (float("nan"), float("nan"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="PyraTok folder (default: the bundled pyratok-tiny)")
    parser.add_argument("--city-clip", default=os.environ.get("PYRATOK_CITY_CLIP"))
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "bench_vs_x264.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from pyratok_hf import PyraTokModel, bundled_model_path
    from pyratok_hf.training.real_data import heldout_real_clips, load_city_shots, psnr

    model = PyraTokModel.from_pretrained(args.model or bundled_model_path()).eval()
    clips = heldout_real_clips(load_city_shots(args.city_clip) if args.city_clip else None, num_frames=17)
    rows = []
    with torch.inference_mode():
        for name, clip in clips:
            enc = model.encode(clip[None])
            recon = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample[0]
            bits = sum(ids.numel() for ids in enc.token_ids) * model.config.codebook_bits
            frames = ((clip.permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
            x264_psnr, x264_bits = x264_at_budget(frames, bits)
            rows.append({"clip": name, "pyratok_psnr": round(psnr(recon, clip), 2), "pyratok_bits": bits,
                         "x264_psnr": round(float(x264_psnr), 2), "x264_bits": x264_bits,
                         "bpp": bits / frames[..., 0].size})
            print(f"{name:42s} pyratok {rows[-1]['pyratok_psnr']:6.2f} dB  x264 {rows[-1]['x264_psnr']:6.2f} dB  "
                  f"(x264 bits / ours {x264_bits / bits:.2f}, {rows[-1]['bpp']:.4f} bpp)", flush=True)
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in ("pyratok_psnr", "x264_psnr")}
    mean["gap_db"] = mean["x264_psnr"] - mean["pyratok_psnr"]
    print(json.dumps(mean))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump({"model": args.model or "bundled pyratok-tiny", "mean": mean, "clips": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
