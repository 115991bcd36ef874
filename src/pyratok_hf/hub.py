"""Publishing to the Hugging Face Hub: a folder that loads for everyone, with a model card.

``prepare_hub_folder`` writes exactly what ``push_to_hub`` uploads: ``config.json`` (with ``auto_map``),
``model.safetensors``, the modeling code (so ``AutoModel.from_pretrained(repo, trust_remote_code=True)``
works without this package) and a ``README.md`` model card. ``push_model_to_hub`` uploads that folder.
Both are tested offline by loading the folder back through every documented entry point.
"""

from __future__ import annotations

import json
import os
import tempfile

CARD_TEMPLATE = """---
license: {license}
library_name: transformers
tags:
- video
- tokenizer
- pyratok
- lookup-free-quantization
- text-to-video
pipeline_tag: feature-extraction
---

# {name}

PyraTok: a language-aligned pyramidal video tokenizer (Susladkar et al., CVPR 2026), packaged with
[pyratok-hf](https://pypi.org/project/pyratok-hf/).

* Backbone: Wan-architecture causal video VAE (8x spatial, 4x causal temporal, {z_dim} latent channels).
* LaPQ: {levels} levels (coarse to fine), {bits}-bit lookup-free codes shared by all levels.
* Parameters: {params:.2f}M.

## Metrics

{metrics}

## Usage

```python
# with the package
import pyratok_hf
from pyratok_hf import PyraTokModel
model = PyraTokModel.from_pretrained("{repo_id}")

# without it (custom code from this repository; pin a revision)
from transformers import AutoModel
model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)

enc = model.encode(video)               # video [B, 3, T, H, W] in [-1, 1]
recon = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
```

## Limitations

{limitations}
"""


def _metrics_table(metrics: dict | None) -> str:
    if not metrics:
        return "Not measured for this checkpoint."
    keys = list(metrics)
    return "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n| " + " | ".join(str(metrics[k]) for k in keys) + " |"


def model_card(model, repo_id: str, metrics: dict | None = None, license: str = "apache-2.0", limitations: str | None = None) -> str:
    c = model.config
    return CARD_TEMPLATE.format(
        license=license, name=repo_id.split("/")[-1], repo_id=repo_id, z_dim=c.latent_channels,
        levels=c.num_levels, bits=c.codebook_bits, params=sum(p.numel() for p in model.parameters()) / 1e6,
        metrics=_metrics_table(metrics),
        limitations=limitations or "Reconstruction quality depends on the backbone and training data; the text "
        "encoder named in config.json must be available to condition on text.",
    )


def prepare_hub_folder(model_or_path, out_dir: str, repo_id: str = "org/pyratok", metrics: dict | None = None, **card_kwargs) -> str:
    """Write the upload folder for ``model_or_path`` (a PyraTokModel or a saved folder) atomically."""
    from .modeling_pyratok import PyraTokModel, register_auto_classes
    from .utils_io import atomic_directory
    from .video_io import atomic_write_text

    model = PyraTokModel.from_pretrained(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
    register_auto_classes()  # sets auto_map and makes save_pretrained copy the modeling code

    with atomic_directory(out_dir) as tmp:  # readers see the old complete folder or the new one, never neither
        model.save_pretrained(tmp, safe_serialization=True)
        config_path = os.path.join(tmp, "config.json")
        with open(config_path) as f:
            config = json.load(f)
        config.pop("backbone_pretrained", None)  # a local path is meaningless to Hub users
        with open(config_path, "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        atomic_write_text(model_card(model, repo_id, metrics, **card_kwargs), os.path.join(tmp, "README.md"))
    return out_dir


def push_model_to_hub(model_or_path, repo_id: str, metrics: dict | None = None, private: bool = False, token: str | None = None, revision: str | None = None):
    """Prepare the folder and upload it (needs network access and a token)."""
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory() as tmp:
        folder = prepare_hub_folder(model_or_path, os.path.join(tmp, "upload"), repo_id=repo_id, metrics=metrics)
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(folder_path=folder, repo_id=repo_id, revision=revision, commit_message="Upload PyraTok")


def push_pipeline_to_hub(pipeline, repo_id: str, private: bool = False, token: str | None = None):
    """Save a PyraTokT2VPipeline folder (model_index.json + components) and upload it."""
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory() as tmp:
        pipeline.save_pretrained(tmp)
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(folder_path=tmp, repo_id=repo_id, commit_message="Upload PyraTok T2V pipeline")
