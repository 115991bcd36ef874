"""Clip sampling, buckets, video-text datasets (folder, HF datasets, tar shards) and bad-data handling."""

import csv
import io
import json
import logging
import os
import tarfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pyratok_hf.data import (
    AspectBucket,
    BucketBatchSampler,
    ClipSampler,
    HFVideoDataset,
    TarShardDataset,
    VideoFolderDataset,
    VideoTransform,
    check_num_frames,
    collate_video_text,
    load_video_text_dataset,
    make_aspect_buckets,
    pick_bucket,
    swap_left_right,
    write_tar_shards,
)
from pyratok_hf.errors import DatasetError
from pyratok_hf.video_io import write_video


def make_video(path, num_frames=12, height=32, width=32, seed=0):
    """Frames whose brightness encodes the frame index, so tests can tell which frames were sampled."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    for index in range(num_frames):
        frames[index] = min(255, 10 + index * 12)
    frames[..., 0] = rng.integers(0, 60)
    return write_video(frames, path, fps=8)


@pytest.fixture()
def folder(tmp_path):
    """A videofolder with 4 good clips (one 5-frame clip is short) and jsonl captions."""
    for index in range(3):
        make_video(tmp_path / f"clip{index}.mp4", seed=index)
    make_video(tmp_path / "short.mp4", num_frames=5)
    rows = [
        {"file_name": "clip0.mp4", "text": "first clip"},
        {"video": "clip1.mp4", "caption": "second clip"},
        {"path": "clip2.mp4", "text": ["third clip", "clip number three"]},
        {"file_name": "short.mp4", "text": "a short clip"},
    ]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return tmp_path


# ----------------------------------------------------------------------------------------------------------
# Sampling and buckets
# ----------------------------------------------------------------------------------------------------------


def test_num_frames_must_be_one_plus_four_k():
    for valid in (1, 5, 9, 17, 33):
        assert check_num_frames(valid) == valid
    with pytest.raises(ValueError, match="use 13 or 17"):
        check_num_frames(16)
    with pytest.raises(ValueError):
        ClipSampler(num_frames=8)


def test_clip_sampler_positions_and_padding():
    sampler = ClipSampler(num_frames=5, frame_stride=2, start="center")
    assert sampler.span == 9
    assert sampler.indices(13) == [2, 4, 6, 8, 10]
    assert ClipSampler(num_frames=5, start="first").indices(20) == [0, 1, 2, 3, 4]
    assert sampler.indices(6) is None  # too short: skipped by default
    padded = ClipSampler(num_frames=5, frame_stride=2, pad_short_clips=True)
    assert padded.indices(6) == [0, 2, 4, 5, 5]
    import random

    starts = {ClipSampler(num_frames=5).choose_start(30, random.Random(i)) for i in range(50)}
    assert len(starts) > 5 and max(starts) <= 25


@pytest.mark.parametrize(
    "height,width,expected",
    [(1080, 1920, "16:9"), (1920, 1080, "9:16"), (480, 640, "4:3"), (640, 480, "3:4"), (512, 512, "1:1"), (500, 1100, "2:1"), (405, 720, "16:9")],
)
def test_pick_bucket_closest_aspect(height, width, expected):
    buckets = make_aspect_buckets(256)
    assert pick_bucket(height, width, buckets).name == expected


def test_buckets_are_multiples_of_eight_with_similar_area():
    buckets = make_aspect_buckets(128)
    areas = [b.height * b.width for b in buckets]
    assert all(b.height % 8 == 0 and b.width % 8 == 0 for b in buckets)
    assert max(areas) / min(areas) < 1.2
    with pytest.raises(ValueError, match="multiples of 8"):
        VideoTransform(size=(30, 32))


def test_transform_crop_flip_and_caption_directions():
    frames = torch.linspace(-1, 1, 40)[None, None, None, :].expand(3, 5, 30, 40).clone()
    transform = VideoTransform(buckets=[AspectBucket("1:1", 16, 16), AspectBucket("4:3", 24, 32)], hflip_prob=1.0)
    out, text, info = transform(frames, "a dot moves left, then the view turns clockwise")
    assert out.shape == (3, 5, 24, 32) and info == {"bucket": "4:3", "flipped": True}
    assert out[0, 0, 0, 0] > out[0, 0, 0, -1]  # flipped: the gradient now decreases
    assert text == "a dot moves right, then the view turns counter-clockwise"
    assert swap_left_right("Left and RIGHT, anticlockwise") == "Right and LEFT, clockwise"
    random_crop = VideoTransform(size=(16, 16), random_crop=True, crop_scale=(0.5, 0.5))
    out, _, info = random_crop(frames)
    assert out.shape == (3, 5, 16, 16) and info["bucket"] is None


# ----------------------------------------------------------------------------------------------------------
# Folder datasets
# ----------------------------------------------------------------------------------------------------------


def test_folder_with_jsonl_and_alternative_keys(folder):
    dataset = VideoFolderDataset(folder, num_frames=9, size=(16, 16), start="first", seed=0)
    assert len(dataset) == 4
    sample = dataset[1]
    assert sample["pixel_values"].shape == (3, 9, 16, 16)
    assert sample["pixel_values"].dtype == torch.float32
    assert -1 <= sample["pixel_values"].min() and sample["pixel_values"].max() <= 1
    assert sample["text"] == "second clip" and sample["key"] == "clip1.mp4"
    assert dataset[2]["text"] in ("third clip", "clip number three")
    assert sample["fps"] == pytest.approx(8.0)
    brightness = sample["pixel_values"][1].mean(dim=(1, 2))
    assert torch.all(brightness[1:] > brightness[:-1])  # consecutive frames, in order


def test_folder_with_csv_and_sidecar_txt(tmp_path):
    make_video(tmp_path / "a.mp4")
    make_video(tmp_path / "b.mp4", seed=1)
    with open(tmp_path / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text"])
        writer.writerows([["a.mp4", "clip a"], ["b.mp4", "clip b"]])
    dataset = VideoFolderDataset(tmp_path, num_frames=5, size=(16, 16))
    assert [dataset[i]["text"] for i in range(2)] == ["clip a", "clip b"]

    sidecar = tmp_path / "sidecar"
    sidecar.mkdir()
    make_video(sidecar / "c.mp4")
    (sidecar / "c.txt").write_text("clip c\n")
    assert VideoFolderDataset(sidecar, num_frames=5)[0]["text"] == "clip c"


def test_bad_samples_are_skipped_counted_and_logged(folder, caplog):
    (folder / "corrupt.mp4").write_bytes(os.urandom(3000))
    (folder / "text.mp4").write_text("<html>404 not found</html>")
    make_video(folder / "uncaptioned.mp4")
    with open(folder / "metadata.jsonl", "a") as handle:
        for row in (
            {"file_name": "corrupt.mp4", "text": "broken"},
            {"file_name": "text.mp4", "text": "not a video"},
            {"file_name": "missing.mp4", "text": "gone"},
            {"file_name": "uncaptioned.mp4", "text": ""},
        ):
            handle.write(json.dumps(row) + "\n")
        handle.write("{not json\n")
    dataset = VideoFolderDataset(folder, num_frames=9, size=(16, 16))
    with caplog.at_level(logging.WARNING, logger="pyratok_hf.data"):
        keys = [dataset[index]["key"] for index in range(len(dataset))]
    assert set(keys) == {"clip0.mp4", "clip1.mp4", "clip2.mp4"}
    assert dataset.skipped == {
        "too_short": 1,
        "corrupt": 1,
        "not_video": 1,
        "missing": 1,
        "missing_caption": 1,
        "bad_metadata_row": 1,
    }
    assert any("too_short" in record.getMessage() for record in caplog.records)

    padded = VideoFolderDataset(folder, num_frames=9, size=(16, 16), pad_short_clips=True)
    short = padded[3]
    assert short["key"] == "short.mp4" and short["pixel_values"].shape[1] == 9
    assert torch.equal(short["pixel_values"][:, -1], short["pixel_values"][:, 4])  # last frame repeated


def test_dataset_with_no_valid_sample_raises_clear_error(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "bad.mp4", "text": "x"}) + "\n")
    dataset = VideoFolderDataset(tmp_path, num_frames=5)
    with pytest.raises(DatasetError, match="No readable sample"):
        dataset[0]


def test_dataloader_batches_with_collate(folder):
    dataset = VideoFolderDataset(folder, num_frames=5, size=(16, 24), return_metadata=True)
    batch = next(iter(DataLoader(dataset, batch_size=3, collate_fn=collate_video_text)))
    assert batch["pixel_values"].shape == (3, 3, 5, 16, 24)
    assert len(batch["text"]) == 3 and isinstance(batch["metadata"], list)
    with pytest.raises(DatasetError, match="BucketBatchSampler"):
        collate_video_text([{"pixel_values": torch.zeros(3, 5, 8, 8), "text": "a"}, {"pixel_values": torch.zeros(3, 5, 8, 16), "text": "b"}])


def test_bucket_batch_sampler_groups_aspects(tmp_path):
    rows = []
    for index in range(6):
        height, width = (32, 32) if index % 2 else (24, 48)
        make_video(tmp_path / f"v{index}.mp4", num_frames=5, height=height, width=width, seed=index)
        rows.append({"file_name": f"v{index}.mp4", "text": f"clip {index}"})
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    buckets = [AspectBucket("1:1", 16, 16), AspectBucket("2:1", 16, 32)]
    dataset = VideoFolderDataset(tmp_path, num_frames=5, buckets=buckets)
    ids = dataset.bucket_ids()
    assert ids == ["2:1", "1:1"] * 3
    sampler = BucketBatchSampler(ids, batch_size=2, seed=1)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(6))
    assert all(len({ids[i] for i in batch}) == 1 for batch in batches)
    for batch in DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_video_text):
        assert batch["pixel_values"].shape[-2:] in ((16, 16), (16, 32))
        assert len(set(batch["bucket"])) == 1
    rank_batches = [list(BucketBatchSampler(ids, 1, seed=1, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(rank_batches[0]) == len(rank_batches[1]) == 3
    assert not {b[0] for b in rank_batches[0]} & {b[0] for b in rank_batches[1]}


# ----------------------------------------------------------------------------------------------------------
# Hugging Face datasets
# ----------------------------------------------------------------------------------------------------------


def test_hf_dataset_with_video_decode_false(folder, tmp_path_factory):
    import datasets

    paths = [str(folder / f"clip{i}.mp4") for i in range(3)]
    features = datasets.Features({"video": datasets.Video(decode=False), "caption": datasets.Value("string")})
    by_path = datasets.Dataset.from_dict({"video": paths, "caption": ["a", "b", "c"]}, features=features)
    dataset = HFVideoDataset(by_path, num_frames=5, size=(16, 16))  # text column falls back to "caption"
    assert dataset[0]["text"] == "a" and dataset[0]["pixel_values"].shape == (3, 5, 16, 16)

    by_bytes = datasets.Dataset.from_dict(
        {"video": [{"path": "clip.mp4", "bytes": open(p, "rb").read()} for p in paths], "text": ["a", "b", "c"]},
        features=datasets.Features({"video": datasets.Video(decode=False), "text": datasets.Value("string")}),
    )
    sample = HFVideoDataset(by_bytes, num_frames=5)[2]
    assert sample["text"] == "c" and sample["pixel_values"].shape == (3, 5, 32, 32)

    decoding = datasets.Dataset.from_dict({"video": paths, "text": ["a", "b", "c"]}).cast_column("video", datasets.Video())
    assert HFVideoDataset(decoding, num_frames=5)[1]["text"] == "b"  # cast to decode=False, no torchcodec needed

    plain = datasets.Dataset.from_dict({"video": paths + [str(folder / "nope.mp4")], "text": ["a", "b", "c", "d"]})
    wrapped = HFVideoDataset(plain, num_frames=5)
    assert wrapped[3]["key"].endswith("clip0.mp4") and wrapped.skipped["missing"] == 1
    with pytest.raises(DatasetError, match="video_column"):
        HFVideoDataset(plain, video_column="clip")

    saved = tmp_path_factory.mktemp("saved")
    datasets.DatasetDict({"train": plain.select(range(3))}).save_to_disk(str(saved))
    assert isinstance(load_video_text_dataset(str(saved), num_frames=5), HFVideoDataset)
    assert isinstance(load_video_text_dataset(plain, num_frames=5), HFVideoDataset)


def test_load_video_text_dataset_dispatch(folder, tmp_path):
    assert isinstance(load_video_text_dataset(str(folder), num_frames=5), VideoFolderDataset)
    split_root = tmp_path / "root"
    (split_root / "train").mkdir(parents=True)
    make_video(split_root / "train" / "a.mp4")
    (split_root / "train" / "metadata.jsonl").write_text(json.dumps({"file_name": "a.mp4", "text": "a"}) + "\n")
    assert load_video_text_dataset(split_root, num_frames=5)[0]["text"] == "a"
    with pytest.raises(DatasetError, match="not found"):
        load_video_text_dataset(str(tmp_path / "missing"))


# ----------------------------------------------------------------------------------------------------------
# Tar shards
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture()
def shards(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    rows = []
    for index in range(5):
        make_video(source / f"v{index}.mp4", num_frames=9, seed=index)
        rows.append({"file_name": f"v{index}.mp4", "text": f"clip {index}", "label": index})
    (source / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    paths = write_tar_shards(VideoFolderDataset(source, num_frames=5), tmp_path / "shards", samples_per_shard=2)
    return paths


def texts(dataset_or_loader):
    return sorted(text for item in dataset_or_loader for text in ([item["text"]] if isinstance(item["text"], str) else item["text"]))


def test_write_and_read_tar_shards(shards):
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert json.loads((shards[0].parent / "shards.json").read_text())["num_samples"] == 5
    with tarfile.open(shards[0]) as archive:
        assert archive.getnames() == ["000000000.mp4", "000000000.txt", "000000000.json", "000000001.mp4", "000000001.txt", "000000001.json"]
    dataset = TarShardDataset(str(shards[0].parent / "*.tar"), num_frames=5, size=(16, 16), return_metadata=True)
    samples = list(dataset)
    assert texts(samples) == [f"clip {i}" for i in range(5)]
    assert samples[0]["pixel_values"].shape == (3, 5, 16, 16)
    assert samples[0]["metadata"]["source_key"] == "v0.mp4" and samples[0]["metadata"]["label"] == 0
    brace = str(shards[0].parent / "shard-{000000..000002}.tar")
    assert isinstance(load_video_text_dataset(brace, num_frames=5), TarShardDataset)


def test_tar_shards_split_across_workers_and_ranks(shards):
    pattern = str(shards[0].parent / "*.tar")
    loader = DataLoader(TarShardDataset(pattern, num_frames=5), batch_size=1, num_workers=2, collate_fn=collate_video_text)
    assert texts(loader) == [f"clip {i}" for i in range(5)]  # every sample exactly once
    per_rank = [texts(TarShardDataset(pattern, num_frames=5, rank=r, world_size=2)) for r in (0, 1)]
    assert not set(per_rank[0]) & set(per_rank[1]) and sorted(per_rank[0] + per_rank[1]) == [f"clip {i}" for i in range(5)]
    # Fewer shards than readers: split by sample instead, still exactly once.
    single = DataLoader(TarShardDataset(str(shards[0]), num_frames=5), batch_size=1, num_workers=2, collate_fn=collate_video_text)
    assert texts(single) == ["clip 0", "clip 1"]


def test_tar_shards_skip_corrupt_members_and_shards(shards, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    with tarfile.open(bad / "a.tar", "w") as archive:
        for name, data in (("k1.mp4", b"\x00\x9f\xff" * 100), ("k1.txt", b"broken video"), ("k2.mp4", shards[0].read_bytes()[:10])):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    data = shards[1].read_bytes()
    (bad / "b.tar").write_bytes(data[: len(data) // 2])  # truncated shard
    dataset = TarShardDataset([str(bad / "a.tar"), str(bad / "b.tar"), str(bad / "c.tar")], num_frames=5)
    list(dataset)
    assert dataset.skipped["corrupt"] == 1 and dataset.skipped["missing_caption"] == 1
    assert dataset.skipped["missing_shard"] == 1
    assert dataset.skipped["corrupt_shard"] == 1
