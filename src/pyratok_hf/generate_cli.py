"""``pyratok generate``: its arguments cost nothing to build (``--help`` imports no model library); the
pipeline is imported only to run."""

from __future__ import annotations

import argparse
import os

from .errors import PyraTokError


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pyratok generate``."""
    parser.add_argument("prompt", help='the text prompt ("" for an unconditional video)')
    parser.add_argument("-o", "--output", required=True, help="output video file (.mp4, .gif, ...)")
    parser.add_argument("--model", default=None, help="pipeline folder or Hub id (default: the bundled tiny pipeline)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same video)")
    parser.add_argument("--guidance-scale", type=float, default=None,
                        help="classifier-free guidance scale (1 = off; default: the one stored with the prior)")
    parser.add_argument("--num-frames", type=int, default=17, help="frames (rounded up to 1 + 4k)")
    parser.add_argument("--height", type=int, default=64, help="height in pixels (rounded up to a multiple of 8)")
    parser.add_argument("--width", type=int, default=64, help="width in pixels (rounded up to a multiple of 8)")
    parser.add_argument("--negative-prompt", default=None, help="what guidance steers away from")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = argmax)")
    parser.add_argument("--top-k", type=int, default=None, help="sample only the k least confident bits per token")
    parser.add_argument("--top-p", type=float, default=None, help="sample a bit only if its confidence is below p")
    parser.add_argument("--mode", choices=("next_scale", "token"), default=None, help="sampling order (default: the prior's)")
    parser.add_argument("--fps", type=float, default=8.0, help="frame rate of the written video")


def run_cli(args: argparse.Namespace) -> int:
    """``pyratok generate "PROMPT" -o OUT.mp4``: write the video atomically; return the exit status."""
    from . import bundled_pipeline_path
    from .video_io import write_video

    model = args.model or bundled_pipeline_path()
    if args.model is None and not os.path.isdir(model):
        raise PyraTokError(
            f"no bundled text-to-video pipeline at {model}; pass --model PATH to a folder saved with "
            "PyraTokT2VPipeline.save_pretrained (e.g. built by pyratok_hf.prior.training.build_t2v_pipeline)."
        )
    if os.path.isdir(model) and not os.path.isfile(os.path.join(model, "model_index.json")):
        raise PyraTokError(f"{model} is not a pipeline folder (no model_index.json); save one with PyraTokT2VPipeline.save_pretrained.")
    import torch

    from .pipeline_pyratok_t2v import PyraTokT2VPipeline

    pipe = PyraTokT2VPipeline.from_pretrained(model)
    # One bar per call: the pipeline's own sampling bar, unless --quiet.
    pipe.set_progress_bar_config(disable=bool(getattr(args, "quiet", False)), leave=False)
    generator = torch.Generator().manual_seed(args.seed)
    out = pipe(
        args.prompt, negative_prompt=args.negative_prompt, num_frames=args.num_frames, height=args.height, width=args.width,
        guidance_scale=args.guidance_scale, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        generator=generator, output_type="np", mode=args.mode,
    )  # fmt: skip
    import numpy as np

    frames = np.clip(np.round(out.frames[0] * 255.0), 0, 255).astype(np.uint8)  # [F, H, W, 3]
    path = write_video(frames, args.output, fps=args.fps)
    print(f"wrote {path} ({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]}, seed {args.seed})")
    return 0
