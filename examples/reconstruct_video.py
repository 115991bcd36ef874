"""Tokenize a video with the bundled pyratok-tiny and decode it back.

    python examples/reconstruct_video.py [VIDEO] [--output outputs/example_reconstruction.mp4]
"""

import argparse

import torch

from pyratok_hf import PyraTokModel, bundled_model_path
from pyratok_hf.data import sample_video_path
from pyratok_hf.metrics.functional import bits_per_pixel, psnr
from pyratok_hf.video_io import read_video, write_video

parser = argparse.ArgumentParser()
parser.add_argument("video", nargs="?", default=str(sample_video_path()))
parser.add_argument("--output", default="outputs/example_reconstruction.mp4")
args = parser.parse_args()

model = PyraTokModel.from_pretrained(bundled_model_path()).eval()
clip = read_video(args.video, max_frames=17)
video = clip.frames.unsqueeze(0)  # [1, 3, T, H, W] in [-1, 1]

with torch.inference_mode():
    enc = model.encode(video)
    recon = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample

for level, ids in enumerate(enc.token_ids, start=1):
    print(f"level {level}: token grid {tuple(ids.shape[1:])}")
print(f"PSNR {float(psnr(recon, video)[0]):.2f} dB at {bits_per_pixel(enc.token_ids, model.config.codebook_bits, video.shape[2:]):.4f} bits/pixel")
write_video(recon[0], args.output, fps=clip.fps)
print(f"wrote {args.output}")
