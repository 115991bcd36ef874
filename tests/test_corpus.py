"""The offline corpus: determinism, split disjointness, schema, and caption facts matching the metadata."""

import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from pyratok_hf.data import (
    VideoFolderDataset,
    build_corpus,
    fetch_city_clip,
    load_masks,
    main_build_corpus,
    sample_video_path,
)
from pyratok_hf.data.corpus import _MOVE_PHRASES
from pyratok_hf.errors import CorpusSourceError
from pyratok_hf.video_io import read_video, read_video_uint8, write_video

TINY = dict(num_train=20, num_val=10, num_long_train=3, num_long_val=2, size=(48, 48), num_frames=9, long_num_frames=(25, 33), progress=False)


@pytest.fixture(scope="module")
def two_shot_city(tmp_path_factory):
    """A stand-in for cityCC0.mpg with a hard cut, so both splits get city clips from different shots."""
    rng = np.random.default_rng(0)
    first = np.repeat(rng.integers(0, 120, (1, 40, 64, 3), dtype=np.uint8), 24, axis=0)
    second = np.repeat(rng.integers(130, 255, (1, 40, 64, 3), dtype=np.uint8), 20, axis=0)
    path = tmp_path_factory.mktemp("city") / "city.mp4"
    return write_video(np.concatenate([first, second]), path, fps=25)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, two_shot_city):
    root = tmp_path_factory.mktemp("corpora")
    first = build_corpus(root / "a", seed=3, city_clip=two_shot_city, **TINY)
    second = build_corpus(root / "b", seed=3, city_clip=two_shot_city, **TINY)
    return first, second


def rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_same_seed_gives_identical_corpus(corpora):
    first, second = corpora
    for name in ("corpus.json", "train/metadata.jsonl", "val/metadata.jsonl"):
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes(), name
    for row in rows(first.train_metadata)[::3] + rows(first.val_metadata)[::3]:
        split = row["split"]
        a = read_video_uint8(first.out_dir / split / row["file_name"])[0]
        b = read_video_uint8(second.out_dir / split / row["file_name"])[0]
        np.testing.assert_array_equal(a, b)
        if row["mask_file"]:
            assert (first.out_dir / split / row["mask_file"]).read_bytes() == (second.out_dir / split / row["mask_file"]).read_bytes()


def test_other_seed_differs(tmp_path, corpora):
    other = build_corpus(tmp_path / "c", seed=4, city_clip=None, **TINY)
    assert other.train_metadata.read_bytes() != corpora[0].train_metadata.read_bytes()
    assert other.counts["train"]["city"] == 0 and other.counts["train"]["total"] == 23


def test_counts_layout_and_manifest(corpora):
    info = corpora[0]
    manifest = json.loads((info.out_dir / "corpus.json").read_text())
    assert manifest["counts"] == info.counts
    assert info.counts["train"] == {"city": 2, "camera": 6, "procedural": 12, "procedural_long": 3, "total": 23}
    assert info.counts["val"]["total"] == 12 and info.counts["val"]["city"] == 1
    assert manifest["recipe"]["num_frames"] == 9 and manifest["recipe"]["city_shots"] == [[0, 24], [24, 44]]
    train, val = rows(info.train_metadata), rows(info.val_metadata)
    assert len(train) == 23 and len(val) == 12
    keys = set(train[0])
    for row in train + val:
        assert set(row) == keys  # one schema for every row
        assert (info.out_dir / row["split"] / row["file_name"]).is_file()
        clip = read_video(info.out_dir / row["split"] / row["file_name"])
        assert clip.frames.shape == (3, row["num_frames"], 48, 48)
        assert (row["num_frames"] - 1) % 4 == 0
        assert row["text"] and row["text"][0].isupper() and row["text"].endswith(".")
    assert {row["num_frames"] for row in train if row["kind"] == "procedural_long"} <= {25, 33}


def test_splits_share_no_source_or_seed(corpora):
    info = corpora[0]
    train, val = rows(info.train_metadata), rows(info.val_metadata)
    train_keys = {tuple(row["generator"]["spawn_key"]) for row in train}
    val_keys = {tuple(row["generator"]["spawn_key"]) for row in val}
    assert not train_keys & val_keys
    assert {key[0] for key in train_keys} == {0} and {key[0] for key in val_keys} == {1}
    nonprocedural = lambda rs: {row["source"] for row in rs if row["kind"] in ("city", "camera")}
    assert not nonprocedural(train) & nonprocedural(val)
    assert {row["source"] for row in train if row["kind"] == "city"} == {"cityCC0.mpg#shot1"}
    assert {row["source"] for row in val if row["kind"] == "city"} == {"cityCC0.mpg#shot2"}
    assert len({row["id"] for row in train + val}) == len(train) + len(val)


DIRECTION_WORDS = {
    "right": ("right", "rightward"),
    "left": ("left", "leftward"),
    "up": ("up", "upward", "rises"),
    "down": ("down", "downward", "sinks"),
}


def mentions_motion(text, motion):
    """Whether the caption states this motion with one of the generator's phrasings."""
    if motion == "static":
        return any(phrase in text for phrase in _MOVE_PHRASES["static"] + ("still", "motionless", "in place"))
    return any(re.search(rf"\b{word}\b", text) for word in DIRECTION_WORDS[motion])


def object_centres(bboxes):
    return [None if box is None else ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) for box in bboxes]


def test_procedural_captions_match_metadata_and_masks(corpora):
    info = corpora[0]
    procedural = [row for row in rows(info.train_metadata) + rows(info.val_metadata) if row["kind"].startswith("procedural")]
    assert procedural
    for row in procedural:
        text = row["text"].lower()
        assert row["background"]["name"] in text
        masks = load_masks(info.out_dir / row["split"] / row["mask_file"])
        frames = read_video_uint8(info.out_dir / row["split"] / row["file_name"])[0]
        assert masks.shape == (row["num_frames"], 48, 48) and masks.dtype == np.uint8
        for obj in row["objects"]:
            assert f"{obj['color']} {obj['shape']}" in text
            assert any(word in text for word in {"small": ("small", "little"), "large": ("large", "big")}[obj["size"]])
            centres = object_centres(obj["bboxes"])
            for frame, (box, centre) in enumerate(zip(obj["bboxes"], centres)):
                pixels = masks[frame] == obj["index"]
                if box is None:
                    assert not pixels.any()
                    continue
                ys, xs = np.nonzero(pixels)
                if len(xs):  # may be fully hidden behind a later object
                    assert box[0] <= xs.min() and xs.max() < box[2] and box[1] <= ys.min() and ys.max() < box[3]
                    colour = frames[frame][pixels].mean(axis=0)
                    assert np.abs(colour - obj["rgb"]).mean() < 45, (row["id"], obj)
                assert 0 <= box[0] < box[2] <= 48 and 0 <= box[1] < box[3] <= 48
        for obj in row["objects"]:
            moving = [m for m in obj["motions"] if m != "static"]
            for motion in moving or ["static"]:
                assert mentions_motion(text, motion), (row["id"], obj["motions"], text)
        if len(row["objects"]) == 1 and row["objects"][0]["motions"] != ["static"]:
            (motion,) = [m for m in row["objects"][0]["motions"] if m != "static"]
            for other, words in DIRECTION_WORDS.items():
                if other != motion:
                    assert not any(re.search(rf"\b{word}\b", text) for word in words), (row["id"], text)
        for segment in row["segments"]:
            obj = row["objects"][segment["object"] - 1]
            assert segment["label"].startswith(f"the {obj['color']} {obj['shape']} ")
            centres = object_centres(obj["bboxes"])
            start, end = segment["start_frame"], segment["end_frame"]
            assert all(centres[t] is not None for t in range(start, end))
            motion = segment["action"].replace("moving ", "")
            for t in range(max(start, 1), end):
                if centres[t - 1] is None:
                    continue
                dx, dy = centres[t][0] - centres[t - 1][0], centres[t][1] - centres[t - 1][1]
                expected = {"right": dx > 0 and dy == 0, "left": dx < 0 and dy == 0, "down": dy > 0 and dx == 0, "up": dy < 0 and dx == 0, "static": dx == dy == 0}
                assert expected[motion], (row["id"], segment, t)
        for event in row["events"]:
            frame = event["frame"]
            numbers = [int(n) for n in re.findall(r"frame (\d+)", text)]
            if f"at frame {frame}" in text or row["kind"] == "procedural_long":
                assert frame in numbers
            assert all(n < row["num_frames"] for n in numbers)
        if row["template"] in ("appear", "disappear"):
            assert bool(re.search(r"\bappears\b", text)) == (row["template"] == "appear")
            assert any(word in text for word in ("disappears", "vanishes", "appears"))


def test_long_clips_localize_actions(corpora):
    info = corpora[0]
    long_rows = [row for row in rows(info.train_metadata) if row["kind"] == "procedural_long"]
    for row in long_rows:
        moving = [s for s in row["segments"] if s["action"] != "static"]
        assert 1 <= len(moving) <= 2
        for segment in moving:
            assert 0 < segment["start_frame"] < segment["end_frame"] < row["num_frames"]
            assert f"frame {segment['start_frame']}" in row["text"] and f"frame {segment['end_frame']}" in row["text"]
            assert mentions_motion(row["text"].lower(), segment["action"].split()[-1])


def test_corpus_loads_as_video_folder(corpora):
    dataset = VideoFolderDataset(corpora[0].val_dir, num_frames=9, start="first", return_metadata=True)
    sample = dataset[0]
    assert sample["pixel_values"].shape == (3, 9, 48, 48) and sample["metadata"]["split"] == "val"
    assert not dataset.skipped


def test_bundled_sample_and_refusals(tmp_path, monkeypatch):
    path = sample_video_path()
    assert path.is_file() and path.stat().st_size < 300_000
    clip = read_video(path)
    assert clip.frames.shape == (3, 33, 144, 256) and clip.fps == pytest.approx(25.0)
    (tmp_path / "user.txt").write_text("keep me")
    with pytest.raises(CorpusSourceError, match="not empty"):
        build_corpus(tmp_path, city_clip=None, **TINY)
    with pytest.raises(ValueError, match="multiples of 8"):
        build_corpus(tmp_path / "x", size=(50, 50), city_clip=None)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(CorpusSourceError, match="--city-clip"):
        fetch_city_clip(tmp_path / "cache")
    cached = tmp_path / "cache2"
    cached.mkdir()
    (cached / "cityCC0.mpg").write_bytes(b"x")
    assert fetch_city_clip(cached) == cached / "cityCC0.mpg"


def test_bundled_sample_fallback_feeds_train_only(tmp_path, capsys):
    info = build_corpus(tmp_path / "s", seed=0, city_clip=sample_video_path(), **dict(TINY, num_long_train=0, num_long_val=0))
    assert info.counts["train"]["city"] == 2 and info.counts["val"]["city"] == 0
    assert info.recipe["city_source"] == "bundled-sample"
    assert main_build_corpus([str(tmp_path / "cli"), "--seed", "1", "--num-train", "4", "--num-val", "2", "--num-long-train", "0", "--num-long-val", "1", "--size", "32", "--num-frames", "9", "--no-city", "--no-progress"]) == 0
    assert json.loads((tmp_path / "cli" / "corpus.json").read_text())["counts"]["val"]["procedural_long"] == 1
    assert '"out_dir"' in capsys.readouterr().out


def test_build_corpus_downloads_nothing_by_default(tmp_path, monkeypatch, capsys):
    """The default city source is the bundled excerpt: no apt-get, no network; --fetch-city is the explicit opt-in."""
    import pyratok_hf.data.corpus as corpus_module

    def no_apt(*args, **kwargs):
        raise AssertionError("build-corpus ran a command (apt-get) without --fetch-city")

    monkeypatch.setattr(corpus_module, "fetch_city_clip", no_apt)
    monkeypatch.setattr(corpus_module.subprocess, "run", no_apt)
    tiny = ["--seed", "1", "--num-train", "4", "--num-val", "2", "--num-long-train", "0", "--num-long-val", "0", "--size", "32", "--num-frames", "9", "--no-progress"]
    assert main_build_corpus([str(tmp_path / "default"), *tiny]) == 0
    recipe = json.loads((tmp_path / "default" / "corpus.json").read_text())["recipe"]
    assert recipe["city_source"] == "bundled-sample"
    info = build_corpus(tmp_path / "api", seed=0, **dict(TINY, num_long_train=0, num_long_val=0))
    assert info.recipe["city_source"] == "bundled-sample" and info.counts["train"]["city"] > 0
    capsys.readouterr()

    monkeypatch.undo()
    monkeypatch.setattr("shutil.which", lambda name: None)  # no apt here: asked-for fetching fails with one line
    assert main_build_corpus([str(tmp_path / "fetch"), *tiny, "--fetch-city", "--cache-dir", str(tmp_path / "cache")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pyratok build-corpus: error: ") and "apt-get" in lines[0] and "--city-clip" in lines[0]


def test_text_to_video_scenes_are_single_centred_objects(tmp_path):
    """--scenes text-to-video: one object, constant motion, path centred in the frame, caption stating it."""
    info = build_corpus(tmp_path / "t2v", seed=5, num_train=12, num_val=4, size=(64, 64), num_frames=17, progress=False,
                        scenes="text-to-video", centre_jitter=2)
    assert info.counts["train"]["procedural"] == 12 and info.counts["train"]["total"] == 12
    assert info.counts["val"]["camera"] == info.counts["val"]["procedural_long"] == 0
    assert info.recipe["scenes"] == "text-to-video"
    for row in rows(info.train_metadata) + rows(info.val_metadata):
        (obj,) = row["objects"]
        assert row["template"] == "constant" and len(obj["motions"]) == 1
        assert mentions_motion(row["text"].lower(), obj["motions"][0]) and f"{obj['color']} {obj['shape']}" in row["text"]
        centres = object_centres(obj["bboxes"])
        middle = centres[len(centres) // 2]
        assert abs(middle[0] - 32) <= 3.5 and abs(middle[1] - 32) <= 3.5, (row["id"], middle)
        if obj["motions"][0] != "static":
            assert obj["speed_px"] == 2
    with pytest.raises(ValueError, match="scenes"):
        build_corpus(tmp_path / "bad", scenes="movies", progress=False)


def test_colour_subset_recipe_reweights_rows_and_links_the_clips(tmp_path):
    """examples/recipes/make_colour_subset.py (train_t2v.sh's decoder legs): rows repeated or drawn per colour."""
    import importlib.util
    from collections import Counter
    from pathlib import Path

    source = tmp_path / "train"
    for folder in ("procedural", "masks"):
        (source / folder).mkdir(parents=True)
    colours = ["red"] * 5 + ["green"] * 2 + ["blue"] * 3
    with open(source / "metadata.jsonl", "w") as handle:
        for i, colour in enumerate(colours):
            handle.write(json.dumps({"file_name": f"procedural/{i}.mp4", "objects": [{"color": colour}]}) + "\n")
    recipe = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "make_colour_subset.py"
    spec = importlib.util.spec_from_file_location("make_colour_subset", recipe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.main([str(source), str(tmp_path / "uni"), "--per-colour", "4"]) == 0
    uni = rows(tmp_path / "uni" / "metadata.jsonl")
    assert Counter(r["objects"][0]["color"] for r in uni) == {"red": 4, "green": 4, "blue": 4}
    assert Counter(r["file_name"] for r in uni if r["objects"][0]["color"] == "green") == {"procedural/5.mp4": 2, "procedural/6.mp4": 2}
    assert os.path.realpath(tmp_path / "uni" / "procedural") == os.path.realpath(source / "procedural")

    assert module.main([str(source), str(tmp_path / "rep"), "--repeat", "green=3", "--others", "1"]) == 0
    assert Counter(r["objects"][0]["color"] for r in rows(tmp_path / "rep" / "metadata.jsonl")) == {"green": 6, "red": 1, "blue": 1}
    with pytest.raises(SystemExit):  # an unknown colour is refused, not silently dropped
        module.main([str(source), str(tmp_path / "bad"), "--repeat", "mauve=2"])
