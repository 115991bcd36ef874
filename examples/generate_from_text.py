"""Generate a clip from text with the bundled tiny PyraTokT2VPipeline (diffusers).

    python examples/generate_from_text.py "a red circle moves right on a black background" --seed 0
"""

import argparse

import torch
from diffusers.utils import export_to_video

from pyratok_hf import PyraTokT2VPipeline, bundled_pipeline_path

parser = argparse.ArgumentParser()
parser.add_argument("prompt", nargs="?", default="a red circle moves right on a black background")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--guidance-scale", type=float, default=3.0)
parser.add_argument("--output", default="outputs/example_generated.mp4")
args = parser.parse_args()

pipe = PyraTokT2VPipeline.from_pretrained(bundled_pipeline_path())
generator = torch.Generator().manual_seed(args.seed)
result = pipe(args.prompt, num_frames=17, height=64, width=64, guidance_scale=args.guidance_scale, generator=generator)
export_to_video(result.frames[0], args.output, fps=8)
print(f"wrote {args.output} ({len(result.frames[0])} frames)")
