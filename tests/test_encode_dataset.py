"""``pyratok encode-dataset``: sharded token files, exactly-once resume after ``kill -9``, several ranks, bad samples.

The crash is real: a subprocess is SIGKILLed by the test hook ``PYRATOK_ENCODE_DATASET_CRASH_AFTER`` after it has
encoded 3 samples, i.e. after its first 2-sample shard is committed and in the middle of the second, so no
``finally``/``atexit`` code runs — exactly like ``kill -9`` or a preempted node.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_tiny_model, random_video
from pyratok_hf.encode_dataset import CRASH_ENV, add_args, iter_token_dataset, load_token_shard, run
from pyratok_hf.errors import ConfigError
from pyratok_hf.video_io import read_video, write_video

NUM_GOOD = 7
BAD_INDEX = 4  # a text file named .mp4, inserted at this position of metadata.jsonl
NO_CAPTION_INDEX = 2


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A videofolder of 8 entries (7 clips, one corrupt, one without caption) and a saved tiny tokenizer."""
    root = tmp_path_factory.mktemp("encode_dataset")
    data = root / "data"
    data.mkdir()
    rows = []
    for i in range(NUM_GOOD):
        write_video(random_video(3, 5 + 4 * (i % 2), 32, 32, seed=i), data / f"clip{i}.mp4", fps=8)
        rows.append({"file_name": f"clip{i}.mp4", "text": "" if i == NO_CAPTION_INDEX else f"moving pattern number {i}"})
    (data / "broken.mp4").write_bytes(b"this is not a video")
    rows.insert(BAD_INDEX, {"file_name": "broken.mp4", "text": "a broken file"})
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    torch.set_num_threads(1)
    make_tiny_model().save_pretrained(root / "model")
    return root


def _args(workspace: Path, out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_args(parser)
    return parser.parse_args([str(workspace / "data"), "-o", str(out), "--model", str(workspace / "model"),
                              "--num-frames", "5", "--samples-per-shard", "2", "--no-progress", *extra])  # fmt: skip


def _collect(out: Path) -> dict[int, dict]:
    """index -> sample, asserting that no dataset index appears twice across shards."""
    samples = {}
    for sample in iter_token_dataset(out):
        assert sample["index"] not in samples, f"sample {sample['index']} written twice"
        samples[sample["index"]] = sample
    return samples


def _assert_exactly_once(out: Path) -> dict[int, dict]:
    manifest = json.loads((out / "manifest.json").read_text())
    samples = _collect(out)
    skipped = {s["index"] for s in manifest["skipped_samples"]}
    assert skipped == {BAD_INDEX} and manifest["skipped_by_reason"] == {"not_video": 1}
    assert sorted(samples) == sorted(set(range(NUM_GOOD + 1)) - skipped)  # no gaps, no duplicates
    assert manifest["num_samples"] == NUM_GOOD and manifest["num_dataset_samples"] == NUM_GOOD + 1
    assert manifest["complete"] and manifest["model"]["codebook_bits"] == 8
    return samples


@pytest.fixture(scope="module")
def clean_run(workspace):
    out = workspace / "clean"
    assert run(_args(workspace, out)) == 0
    return _assert_exactly_once(out)


def _assert_same_tokens(samples, reference):
    assert samples.keys() == reference.keys()
    for index, sample in samples.items():
        assert sample["sample_id"] == reference[index]["sample_id"] and sample["caption"] == reference[index]["caption"]
        assert all(torch.equal(a, b) for a, b in zip(sample["token_ids"], reference[index]["token_ids"]))


def test_shards_hold_the_models_tokens(workspace, clean_run):
    from pyratok_hf import PyraTokModel

    assert clean_run[NO_CAPTION_INDEX]["caption"] is None
    model = PyraTokModel.from_pretrained(workspace / "model").eval()
    sample = clean_run[1]  # clip1 has 9 frames: the first 5 are tokenized
    clip = read_video(workspace / "data" / "clip1.mp4", max_frames=5).frames
    with torch.inference_mode():
        enc = model.encode(clip.unsqueeze(0), text=[sample["caption"]])
    assert sample["input_shape"] == (5, 32, 32) and sample["sample_id"] == "clip1.mp4"
    assert all(torch.equal(a, b[0]) for a, b in zip(sample["token_ids"], enc.token_ids))
    shard = load_token_shard(workspace / "clean" / "shards" / "r00000-s000000.safetensors")
    assert [s["index"] for s in shard] == [0, 1]


def test_resume_after_sigkill_has_no_duplicates_or_gaps(workspace, clean_run):
    out = workspace / "killed"
    command = [sys.executable, "-m", "pyratok_hf.cli", "encode-dataset", str(workspace / "data"), "-o", str(out),
               "--model", str(workspace / "model"), "--num-frames", "5", "--samples-per-shard", "2", "--no-progress"]  # fmt: skip
    env = {**os.environ, CRASH_ENV: "3", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    progress = json.loads(next((out / "progress").glob("*.json")).read_text())
    assert sorted(progress["committed"]) == ["0"] and not progress["finished"]  # killed inside shard 1
    assert not (out / "manifest.json").exists()
    # Resume (same settings): shard 0 is skipped, the rest is encoded once.
    assert run(_args(workspace, out)) == 0
    samples = _assert_exactly_once(out)
    _assert_same_tokens(samples, clean_run)
    assert not list((out / "shards").glob(".*tmp*"))
    # A finished run resumed again changes nothing.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    assert run(_args(workspace, out)) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == before


def test_two_ranks_by_hand_split_by_index_modulo(workspace, clean_run):
    out = workspace / "ranks"
    assert run(_args(workspace, out, "--rank", "1", "--world-size", "2")) == 0
    assert not (out / "manifest.json").exists()  # rank 0 has not finished yet
    first = load_token_shard(out / "shards" / "r00001-s000000.safetensors")
    assert [s["index"] for s in first] == [1, 3]  # rank 1 takes i % 2 == 1
    assert run(_args(workspace, out, "--rank", "0", "--world-size", "2", "--batch-size", "2")) == 0
    _assert_same_tokens(_assert_exactly_once(out), clean_run)
    # Resuming with another world size would reshuffle the assignment: refused with a clear message.
    with pytest.raises(ConfigError, match="world_size"):
        run(_args(workspace, out, "--rank", "0", "--world-size", "3"))


def test_hf_datasets_folder_and_tar_shards_give_the_same_tokens(workspace, clean_run):
    import datasets

    from pyratok_hf.data.datasets import VideoFolderDataset, write_tar_shards

    rows = [json.loads(line) for line in (workspace / "data" / "metadata.jsonl").read_text().splitlines()]
    hf_dir = workspace / "hf"
    datasets.Dataset.from_dict({
        "video": [str(workspace / "data" / r["file_name"]) for r in rows], "text": [r["text"] for r in rows],
    }).save_to_disk(str(hf_dir))  # fmt: skip
    args = _args(workspace, workspace / "hf_out")
    args.data = str(hf_dir)
    assert run(args) == 0
    manifest = json.loads((workspace / "hf_out" / "manifest.json").read_text())
    assert manifest["skipped_by_reason"] == {"not_video": 1} and manifest["num_samples"] == NUM_GOOD
    hf_samples = _collect(workspace / "hf_out")
    for index in hf_samples:
        assert all(torch.equal(a, b) for a, b in zip(hf_samples[index]["token_ids"], clean_run[index]["token_ids"]))

    write_tar_shards(VideoFolderDataset(workspace / "data", default_caption=""), workspace / "tars", samples_per_shard=3)
    args = _args(workspace, workspace / "tar_out", "--world-size", "1", "--rank", "0")
    args.data = str(workspace / "tars")
    assert run(args) == 0
    tar_samples = list(iter_token_dataset(workspace / "tar_out"))
    assert len(tar_samples) == len({s["index"] for s in tar_samples}) >= NUM_GOOD - 1
    by_caption = {s["caption"]: s for s in clean_run.values() if s["caption"]}
    for sample in tar_samples:
        if sample["caption"] in by_caption:
            reference = by_caption[sample["caption"]]
            assert all(torch.equal(a, b) for a, b in zip(sample["token_ids"], reference["token_ids"]))


# ----------------------------------------------------------------------------- --format datasets (Parquet)
def test_datasets_format_round_trip_and_resume_after_sigkill(workspace, clean_run):
    """encode-dataset --format datasets -> load_dataset("parquet") -> decode of one row == decoding the tokens
    directly; a run killed with SIGKILL mid-shard resumes with every clip exactly once."""
    datasets = pytest.importorskip("datasets")
    from pyratok_hf import PyraTokModel
    from pyratok_hf.encode_dataset import row_token_ids, token_dataset_files

    out = workspace / "parquet"
    command = [sys.executable, "-m", "pyratok_hf.cli", "encode-dataset", str(workspace / "data"), "-o", str(out), "--model",
               str(workspace / "model"), "--num-frames", "5", "--samples-per-shard", "2", "--no-progress", "--format", "datasets"]  # fmt: skip
    killed = subprocess.run(command, env={**os.environ, CRASH_ENV: "3", "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert [p.name for p in (out / "shards").glob("*.parquet")] == ["r00000-s000000.parquet"] and not (out / "manifest.json").exists()
    assert run(_args(workspace, out, "--format", "datasets")) == 0  # resume
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shard_format"] == "datasets"
    files = token_dataset_files(out)
    assert files and all(f.endswith(".parquet") for f in files)

    table = datasets.load_dataset("parquet", data_files=files, split="train")
    indices = table["sample_index"]
    assert sorted(indices) == sorted(clean_run) and len(set(indices)) == len(indices) == NUM_GOOD  # no duplicates, no gaps
    assert {"sample_id", "caption", "fps", "input_shape", "level_0_ids", "level_0_shape"} <= set(table.column_names)
    rows = {row["sample_index"]: row for row in table}
    for index, reference in clean_run.items():  # the same tokens as the safetensors run
        assert rows[index]["sample_id"] == reference["sample_id"] and (rows[index]["caption"] or None) == reference["caption"]
        assert all(torch.equal(a, b) for a, b in zip(row_token_ids(rows[index]), reference["token_ids"]))
    _assert_exactly_once(out)  # iter_token_dataset reads the Parquet shards too

    model = PyraTokModel.from_pretrained(workspace / "model").eval()
    row = rows[1]
    with torch.inference_mode():
        from_row = model.decode(token_ids=[g[None] for g in row_token_ids(row)], output_shape=tuple(row["input_shape"])).sample
        clip = read_video(workspace / "data" / "clip1.mp4", max_frames=5).frames  # encode + decode directly
        enc = model.encode(clip.unsqueeze(0), text=[row["caption"]])
        direct = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
    assert from_row.shape == (1, 3, 5, 32, 32) and torch.equal(from_row, direct)

    with pytest.raises(ConfigError, match="format"):  # a resume may not switch formats
        run(_args(workspace, out, "--format", "safetensors"))
