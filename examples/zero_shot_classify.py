"""Zero-shot classification of a clip against typed labels, with the language-aligned tokens.

    python examples/zero_shot_classify.py [VIDEO] --labels "a city street,a red circle,a cat"
"""

import argparse

from pyratok_hf import PyraTokModel, bundled_model_path
from pyratok_hf.data import sample_video_path
from pyratok_hf.tasks.retrieval import classify

parser = argparse.ArgumentParser()
parser.add_argument("video", nargs="?", default=str(sample_video_path()))
parser.add_argument("--labels", default="skyscrapers at night,a red circle moving right,a cat,a galaxy")
parser.add_argument("--plot", default="outputs/example_classify.png")
args = parser.parse_args()

model = PyraTokModel.from_pretrained(bundled_model_path()).eval()
result = classify(model, args.video, [label.strip() for label in args.labels.split(",")])
for label, probability in result.top(k=len(result.labels))[0]:
    print(f"{probability:6.3f}  {label}")
result.plot(args.plot)
print(f"wrote {args.plot}")
