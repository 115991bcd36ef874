"""Video-text data for PyraTok: datasets, clip sampling/transforms, and the offline captioned corpus.

Quick start::

    from pyratok_hf.data import build_corpus, load_video_text_dataset, collate_video_text
    info = build_corpus("corpus")                                   # offline, deterministic
    train = load_video_text_dataset("corpus/train", num_frames=17, size=(64, 64))
    loader = torch.utils.data.DataLoader(train, batch_size=8, collate_fn=collate_video_text)
"""

from .corpus import CorpusInfo, build_corpus, fetch_city_clip, load_masks, main_build_corpus, make_city_sample, sample_video_path
from .datasets import (
    BucketBatchSampler,
    HFVideoDataset,
    RawSample,
    TarShardDataset,
    VideoFolderDataset,
    collate_video_text,
    expand_shard_spec,
    load_video_text_dataset,
    write_tar_shards,
)
from .transforms import (
    DEFAULT_ASPECT_RATIOS,
    AspectBucket,
    ClipSampler,
    VideoTransform,
    check_num_frames,
    make_aspect_buckets,
    pick_bucket,
    resized_crop,
    swap_left_right,
)

__all__ = [
    "AspectBucket",
    "BucketBatchSampler",
    "ClipSampler",
    "CorpusInfo",
    "DEFAULT_ASPECT_RATIOS",
    "HFVideoDataset",
    "RawSample",
    "TarShardDataset",
    "VideoFolderDataset",
    "VideoTransform",
    "build_corpus",
    "check_num_frames",
    "collate_video_text",
    "expand_shard_spec",
    "fetch_city_clip",
    "load_masks",
    "load_video_text_dataset",
    "main_build_corpus",
    "make_aspect_buckets",
    "make_city_sample",
    "pick_bucket",
    "resized_crop",
    "sample_video_path",
    "swap_left_right",
    "write_tar_shards",
]
