"""Zero-shot tasks: classification, retrieval, localization, segmentation, CRF, plots and pipelines.

A random tiny PyraTok (real MiniLM text encoder, loaded offline) runs every task end to end on tiny clips; the
segment-finding, upsampling and CRF logic is also tested directly on arrays with known answers.
"""

import os

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")

import warnings

import numpy as np
import pytest
import torch

from pyratok_hf import PyraTokConfig, PyraTokModel
from pyratok_hf.configuration_pyratok import TINY_VAE_CONFIG
from pyratok_hf.errors import InvalidInputError, PyraTokError
from pyratok_hf.tasks import (
    ClassificationResult,
    LocalizationResult,
    RetrievalResult,
    Segment,
    SegmentationResult,
    ShortClipWarning,
    classify,
    find_segments,
    localize,
    localize_scores,
    merge_segments,
    refine_mask,
    retrieve,
    segment,
    semantic_units,
    smooth_scores,
    split_actions,
)
from pyratok_hf.tasks.retrieval import feature_frame_index
from pyratok_hf.tasks.segmentation import upsample_token_maps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The CI machine's 2 cores are shared: torch's intra-op threads oversubscribe them and slow tiny ops 20x.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = PyraTokConfig.from_preset("pyratok-tiny", backbone_config={**TINY_VAE_CONFIG, "base_dim": 8}, level_hidden_dim=32)
    return PyraTokModel(config).eval()


@pytest.fixture(scope="module")
def video():
    return torch.rand(3, 9, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _is_png(path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == PNG_MAGIC


# ----------------------------------------------------------------------------------------------------------------
# Classification and retrieval
# ----------------------------------------------------------------------------------------------------------------


def test_classify_end_to_end(model, video, tmp_path):
    result = classify(model, video, ["red circle", "blue square", "green triangle"])
    assert isinstance(result, ClassificationResult)
    assert result.prompts[0] == "a video of red circle"
    assert result.probabilities.shape == result.similarities.shape == (1, 3)
    assert torch.allclose(result.probabilities.sum(1), torch.ones(1), atol=1e-5)
    assert result.predicted_labels[0] in result.labels
    top = result.top(2)[0]
    assert len(top) == 2 and top[0][1] >= top[1][1]
    assert _is_png(result.plot(tmp_path / "classify.png"))
    batch = classify(model, torch.stack([video, -video]), ["a", "b"], prompt_template="{}")
    assert batch.probabilities.shape == (2, 2)


def test_classify_rejects_bad_labels(model, video):
    with pytest.raises(InvalidInputError, match="unique"):
        classify(model, video, ["a", "a"])
    with pytest.raises(InvalidInputError, match="prompt_template"):
        classify(model, video, ["a"], prompt_template="no placeholder")
    with pytest.raises(InvalidInputError):
        classify(model, video, [])
    with pytest.raises(InvalidInputError):
        classify(model, [], ["a"])


def test_retrieve_end_to_end(model, video, tmp_path):
    other_shape = torch.rand(3, 5, 32, 48) * 2 - 1  # shapes may differ between videos
    result = retrieve(model, [video, -video, other_shape], ["one", "two", "three"], ks=(1, 5))
    assert isinstance(result, RetrievalResult)
    assert result.similarity.shape == (3, 3)
    assert sorted(result.text_to_video[0].tolist()) == [0, 1, 2]
    assert result.video_to_text.shape == (3, 3)
    assert {"t2v_R@1", "v2t_R@1"} <= set(result.metrics)  # R@5 dropped: only 3 candidates
    assert torch.equal(result.text_to_video[:, 0], result.similarity.argmax(1))
    assert _is_png(result.plot(tmp_path / "retrieval.png"))
    # Non-square without ground truth: no metrics; with a mismatched ground truth: a typed error.
    assert retrieve(model, [video, -video], ["only one"]).metrics == {}
    with pytest.raises(PyraTokError):
        retrieve(model, [video, -video], ["a", "b"], positives=[0])


# ----------------------------------------------------------------------------------------------------------------
# Localization: the segment logic on arrays
# ----------------------------------------------------------------------------------------------------------------


def test_feature_frame_index_follows_the_causal_encoder():
    # latent frame 0 = frame 0, latent frame i covers frames 4i-3 .. 4i
    assert feature_frame_index(9, 3, 4).tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert feature_frame_index(7, 3, 4).tolist() == [0, 1, 1, 1, 1, 2, 2]  # padded to 9 frames internally
    assert feature_frame_index(5, 5, 1).tolist() == [0, 1, 2, 3, 4]


def test_feature_frame_index_restarts_in_every_causal_window():
    # 17-frame windows -> 5 latent frames each; the second window's first frame (18th) has a latent frame alone
    index = feature_frame_index(30, 9, 4, causal_window_frames=17).tolist()
    assert index[:17] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]
    assert index[17:] == [5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8]  # 13 frames: the last window, padded to 13
    assert feature_frame_index(17, 5, 4, causal_window_frames=17).tolist() == feature_frame_index(17, 5, 4).tolist()
    # it agrees with the model's own latent frame count for any length
    from pyratok_hf import PyraTokConfig

    config = PyraTokConfig.from_preset("pyratok-tiny", causal_window_frames=17)
    for frames in (1, 16, 17, 18, 34, 49, 50, 97):
        latent = config.latent_num_frames(frames)
        index = feature_frame_index(frames, latent, 4, causal_window_frames=17)
        assert int(index[-1]) == latent - 1 and len(index) == frames


def test_smooth_scores_and_find_segments():
    curve = np.array([0, 0, 3, 3, 3, 0, 0], dtype=float)
    smoothed = smooth_scores(curve, 3)
    assert np.allclose(smoothed, [0, 1, 2, 3, 2, 1, 0])
    assert np.allclose(smooth_scores(np.full(6, 2.0), 4), 2.0)  # ends are not biased towards zero
    assert find_segments([0, 1, 1, 0, 1], 0.5) == [(1, 3), (4, 5)]
    assert find_segments([1, 1, 1], 0.5, available=[True, False, True]) == [(0, 1), (2, 3)]
    assert find_segments([0, 0], 1.0) == []


def test_localize_scores_recovers_known_segments():
    frames = 100
    curve = np.zeros(frames)
    curve[20:40] = 1.0  # the strongest action
    curve[60:75] = 0.6  # a weaker second one
    result = localize_scores(curve, ["action"], window=5, fps=10.0)
    assert isinstance(result, LocalizationResult)
    (best,) = result.segments
    assert abs(best.start_frame - 20) <= 2 and abs(best.end_frame - 40) <= 2
    assert best.start_time == pytest.approx(best.start_frame / 10.0)
    smoothed = result.smoothed_scores[0].double()
    assert result.thresholds[0] == pytest.approx(float(smoothed.mean() + 0.5 * smoothed.std(unbiased=False)), rel=1e-4)
    assert len(result.candidates[0]) == 2  # both bumps are candidates; the stronger one wins

    # Two actions with the same curve: the second query cannot reuse the first one's frames.
    two = localize_scores(np.stack([curve, curve]), ["first", "second"], window=5)
    first, second = two.segments
    assert abs(first.start_frame - 20) <= 2
    assert abs(second.start_frame - 60) <= 2 and abs(second.end_frame - 75) <= 2
    assert len(two.merged_segments) == 2

    fixed = localize_scores(curve, window=1, threshold=0.5)
    assert [(s.start_frame, s.end_frame) for s in fixed.segments] == [(20, 40)]
    assert localize_scores(curve, window=1, threshold=2.0).segments == []  # nothing above: no segment


def test_merge_segments_merges_overlaps_and_touching():
    merged = merge_segments([Segment(0, 10, 1.0, "a"), Segment(8, 20, 0.5, "b"), Segment(20, 25, 0.2, "c"), Segment(30, 40, 0.1, "d")])
    assert [(s.start_frame, s.end_frame) for s in merged] == [(0, 25), (30, 40)]
    assert merged[0].query == "a + b + c"


def test_localize_scores_bad_input():
    with pytest.raises(InvalidInputError):
        localize_scores(np.zeros(10), ["a", "b"])
    with pytest.raises(InvalidInputError):
        localize_scores(np.zeros(10), window=0)
    with pytest.raises(InvalidInputError):
        localize_scores(np.array([0.0, np.nan]))
    with pytest.raises(InvalidInputError):
        localize_scores(np.zeros((2, 0)))


def test_short_clip_shrinks_the_window_with_a_warning():
    with pytest.warns(ShortClipWarning, match="shrunk to 9"):
        result = localize_scores(np.arange(9.0), window=25)
    assert result.window == 9


def test_split_actions():
    assert split_actions("the red circle moves left and the blue square moves up") == ["the red circle moves left", "the blue square moves up"]
    assert split_actions("a black and white cat") == ["a black and white cat"]
    assert split_actions(["a", "b"]) == ["a", "b"]
    assert split_actions("x moves left and y moves up", split_and=False) == ["x moves left and y moves up"]


# ----------------------------------------------------------------------------------------------------------------
# Localization and segmentation end to end
# ----------------------------------------------------------------------------------------------------------------


def test_localize_end_to_end(model, video, tmp_path):
    with pytest.warns(ShortClipWarning):
        result = localize(model, video, "the red circle moves left and the blue square moves up", fps=8.0)
    assert result.queries == ["the red circle moves left", "the blue square moves up"]
    assert result.frame_scores.shape == result.smoothed_scores.shape == (2, 9)
    assert result.window == 9
    for seg in result.segments:
        assert 0 <= seg.start_frame < seg.end_frame <= 9
        assert seg.end_time == pytest.approx(seg.end_frame / 8.0)
    assert _is_png(result.plot(tmp_path / "timeline.png", ground_truth=[(2, 6)]))
    # A window that fits the clip gives no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShortClipWarning)
        localize(model, video, "a circle", window=3)


def test_semantic_units_and_stop_word_queries():
    assert semantic_units("the red circle and a blue square") == ["red circle", "blue square"]
    assert semantic_units("A video of a small orange triangle moving up.") == ["small orange triangle moving up"]
    with pytest.raises(InvalidInputError, match="no content words"):
        semantic_units("the of and a video")
    with pytest.raises(InvalidInputError, match="no content words"):
        semantic_units("  ...  ")


def test_segment_end_to_end(model, video, tmp_path):
    result = segment(model, video, "the red circle and a blue square")
    assert isinstance(result, SegmentationResult)
    assert result.units == ["red circle", "blue square"]
    assert result.masks.shape == result.similarity.shape == (2, 9, 32, 32)
    assert result.masks.dtype == torch.bool and result.mask.shape == (9, 32, 32)
    assert 0.0 <= float(result.probabilities.min()) and float(result.probabilities.max()) <= 1.0
    refined = segment(model, video, "circle", crf=True)
    assert refined.refined and refined.masks.shape == (1, 9, 32, 32)
    assert _is_png(result.plot(tmp_path / "heatmaps.png", frames=video))
    with pytest.raises(InvalidInputError, match="no content words"):
        segment(model, video, "the and of")
    with pytest.raises(InvalidInputError):
        segment(model, video, "circle", threshold=1.5)


class _DesignedEmbedder:
    """Token embeddings built so that the plain cosine map picks the wrong tokens.

    Every token carries a large part shared by its frame (one frame's shared part leans towards the query, as
    the causal-window position does in real tokens); a few background patches lean along a direction that the
    query shares a little and "background" shares more; the object's tokens add a part only the query shares.
    """

    def __init__(self, grid=(3, 4, 4), object_cell=(1, 2)):
        from types import SimpleNamespace

        self.config = SimpleNamespace(num_levels=1, temporal_compression=4, spatial_compression=8,
                                      level_spatial_downsample=[1], level_temporal_downsample=[1])
        eye = torch.eye(4)
        self.texts = {"red circle": eye[0] + 0.5 * eye[1] + 0.5 * eye[2], "background": eye[0] + 0.6 * eye[1]}
        t, h, w = grid
        tokens = 3.0 * eye[0].expand(t, h, w, 4).clone()
        tokens[2] += 1.2 * eye[2]  # a frame whose shared part leans towards the query
        for cell in ((0, 0), (3, 3), (0, 3)):  # background patches that share a direction with the query
            tokens[:, cell[0], cell[1]] += 2.0 * eye[1]
        tokens[:, object_cell[0], object_cell[1]] += 1.5 * eye[2]  # the object
        self.tokens, self.object_cell = tokens, object_cell

    def get_text_features(self, text, normalize=True):
        return torch.nn.functional.normalize(torch.stack([self.texts[x] for x in text]), dim=-1)

    def get_video_features(self, pixel_values, pooling="token", level=None, normalize=True):
        return torch.nn.functional.normalize(self.tokens, dim=-1)[None] if normalize else self.tokens[None]


def _designed_iou(**options):
    embedder = _DesignedEmbedder()
    row, col = embedder.object_cell
    truth = torch.zeros(9, 32, 32, dtype=torch.bool)
    truth[:, row * 8 : row * 8 + 8, col * 8 : col * 8 + 8] = True
    mask = segment(embedder, torch.zeros(3, 9, 32, 32), "red circle", units=["red circle"], **options).masks[0]
    return float((mask & truth).sum()) / float((mask | truth).sum())


def test_segment_centres_tokens_and_contrasts_with_background():
    plain = _designed_iou(centre_tokens=False, background_prompts=None)
    centred = _designed_iou(centre_tokens=True, background_prompts=None)
    contrasted = _designed_iou(centre_tokens=False, background_prompts=["background"])
    full = _designed_iou(background_prompts=["background"])
    assert _designed_iou(background_prompts="background") == full  # one prompt may be a plain string
    assert full > 0.5 and full > max(plain, centred, contrasted) + 0.1, (plain, centred, contrasted, full)
    with pytest.raises(InvalidInputError):
        segment(_DesignedEmbedder(), torch.zeros(3, 9, 32, 32), "red circle", background_prompts=["  "])


def test_upsample_token_maps_follows_the_encoder_layout():
    maps = torch.arange(12, dtype=torch.float32).view(1, 3, 2, 2)  # [U, t, h, w]
    up = upsample_token_maps(maps, num_frames=9, height=16, width=16, temporal_factor=4, spatial_factor=8)
    assert up.shape == (1, 9, 16, 16)
    assert torch.equal(up[0, 1], up[0, 4]) and torch.equal(up[0, 5], up[0, 8])  # nearest latent frame
    assert not torch.equal(up[0, 0], up[0, 1])
    assert up[0, 0, 0, 0] == pytest.approx(0.0) and up[0, 0, 15, 15] == pytest.approx(3.0)  # corners keep token values
    cropped = upsample_token_maps(maps, num_frames=9, height=13, width=10, temporal_factor=4, spatial_factor=8)
    assert torch.allclose(cropped, up[:, :, :13, :10])  # odd sizes: the padded canvas is cropped


# ----------------------------------------------------------------------------------------------------------------
# CRF
# ----------------------------------------------------------------------------------------------------------------


def _square_scene(frames: int = 4, size: int = 32):
    video = torch.full((3, frames, size, size), -0.8)
    mask = torch.zeros(frames, size, size, dtype=torch.bool)
    video[0, :, 10:20, 8:18] = 0.9  # a red square
    mask[:, 10:20, 8:18] = True
    return video, mask


def test_crf_keeps_a_clean_mask_clean():
    video, mask = _square_scene()
    assert torch.equal(refine_mask(video, mask), mask)


def test_crf_removes_isolated_noise_pixels():
    video, mask = _square_scene()
    noisy = mask.clone()
    noise = [(0, 2, 3), (1, 28, 25), (2, 5, 27), (3, 25, 4), (3, 14, 28)]
    for t, y, x in noise:
        noisy[t, y, x] = True
    refined = refine_mask(video, noisy)
    assert all(not refined[t, y, x] for t, y, x in noise)
    assert torch.equal(refined, mask)


# ----------------------------------------------------------------------------------------------------------------
# Pipelines
# ----------------------------------------------------------------------------------------------------------------


def test_zero_shot_classification_pipeline(model, video):
    from transformers import pipeline

    from pyratok_hf.tasks.pipelines import (
        TemporalActionLocalizationPipeline,
        VideoTextRetrievalPipeline,
        VideoTextSegmentationPipeline,
        ZeroShotVideoClassificationPipeline,
        register_pipelines,
    )

    pipe = ZeroShotVideoClassificationPipeline(model=model)
    out = pipe(video, candidate_labels=["red", "blue"])
    assert [set(d) for d in out] == [{"label", "score"}] * 2
    assert out[0]["score"] >= out[1]["score"] and sum(d["score"] for d in out) == pytest.approx(1.0, abs=1e-5)
    assert len(pipe([video, video], candidate_labels=["red", "blue"])) == 2
    with pytest.raises(InvalidInputError):
        pipe(video)
    register_pipelines()
    assert isinstance(pipeline("zero-shot-video-classification", model=model), ZeroShotVideoClassificationPipeline)

    assert isinstance(VideoTextRetrievalPipeline(model)([video, -video], ["a", "b"]), RetrievalResult)
    assert isinstance(TemporalActionLocalizationPipeline(model, window=3)(video, "a circle"), LocalizationResult)
    assert isinstance(VideoTextSegmentationPipeline(model)(video, "circle"), SegmentationResult)
