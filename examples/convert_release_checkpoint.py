"""Convert the authors' released checkpoint (diffusers AutoencoderKLPyraTok in vae/) to pyratok-hf.

    python examples/convert_release_checkpoint.py SRC_FOLDER_OR_HUB_ID OUT_FOLDER [--subfolder vae]

SRC is the release's repository (e.g. onkarsus13/PyraTok when online, or a local download of it).
"""

import argparse
import sys

from pyratok_hf import AutoencoderPyraTok, PyraTokModel
from pyratok_hf.cli import error_message
from pyratok_hf.convert_release import convert_release

parser = argparse.ArgumentParser()
parser.add_argument("source")
parser.add_argument("output")
parser.add_argument("--subfolder", default="vae")
args = parser.parse_args()

try:
    report = convert_release(args.source, args.output, subfolder=args.subfolder)
    model = PyraTokModel.from_pretrained(args.output)  # the converted folder loads in both classes
    vae = AutoencoderPyraTok.from_pretrained(args.output)
except Exception as err:  # noqa: BLE001 - user errors (offline Hub id, missing folder, bad file): one line
    message = error_message(err)
    if message is None:
        raise
    sys.exit(f"convert_release_checkpoint.py: error: {' '.join(message.split())}")
print(f"converted: {model.config.num_levels} residual levels, {model.config.codebook_bits}-bit codes -> {args.output}")
