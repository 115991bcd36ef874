"""Tests for pyratok_hf.metrics: every metric against hand-computed values on tiny inputs.

Expected numbers are derived in the comments next to each assertion, so a failure points at the arithmetic
rather than at a stored golden file. The evaluate modules are loaded from their local paths (the Hub is never
contacted) and checked to agree with the functional code.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402

from pyratok_hf.errors import MetricInputError, PyraTokError  # noqa: E402
from pyratok_hf.metrics import (  # noqa: E402
    ACTIVITYNET_TIOU_THRESHOLDS,
    EVALUATE_MODULE_NAMES,
    THUMOS14_TIOU_THRESHOLDS,
    CodebookUsageAccumulator,
    FVDMetric,
    RandomI3DLike,
    TorchScriptI3D,
    average_precision,
    bits_per_pixel,
    bits_per_pixel_entropy,
    class_mean_iou,
    codebook_usage,
    evaluate_module_path,
    frechet_distance,
    gaussian_statistics,
    jaccard_j,
    load_metric,
    mean_iou,
    per_frame_iou,
    psnr,
    retrieval_metrics,
    ssim,
    temporal_action_localization_map,
    temporal_iou,
)

# ------------------------------------------------------------------------------------------------ PSNR / SSIM


def test_psnr_constant_offset():
    # Every pixel off by 0.1 -> MSE = 0.01; PSNR = 10 log10(2^2 / 0.01) = 10 log10(400) = 26.0206 dB.
    ref = torch.zeros(2, 3, 2, 4, 4)
    pred = ref + 0.1
    values = psnr(pred, ref)
    assert values.shape == (2,)
    assert torch.allclose(values, torch.full((2,), 10 * math.log10(400), dtype=torch.float64), atol=1e-4)
    # Unbatched [C, T, H, W] gives a scalar; numpy works too. Offset 1 -> MSE 1 -> 10 log10(4) = 6.0206 dB.
    value = psnr(np.ones((3, 2, 4, 4)), np.zeros((3, 2, 4, 4)))
    assert value.ndim == 0 and abs(float(value) - 10 * math.log10(4)) < 1e-9


def test_psnr_pools_error_over_frames_and_caps_identical():
    ref = torch.zeros(3, 2, 2, 2)
    pred = ref.clone()
    assert math.isinf(float(psnr(pred, ref)))  # zero error -> +inf by definition
    assert float(psnr(pred, ref, max_psnr=100.0)) == 100.0
    # Frame 0 exact, frame 1 off by 0.2: pooled MSE = (0 + 0.04) / 2 = 0.02 -> 10 log10(4 / 0.02) = 23.0103 dB.
    pred[:, 1] = 0.2
    assert abs(float(psnr(pred, ref)) - 10 * math.log10(200)) < 1e-6
    # data_range 255: offset 1 -> 10 log10(255^2) = 48.1308 dB.
    assert abs(float(psnr(np.ones((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), data_range=255)) - 20 * math.log10(255)) < 1e-9


def test_ssim_identical_is_one():
    video = torch.rand(2, 3, 2, 16, 16) * 2 - 1
    assert torch.equal(ssim(video, video), torch.ones(2, dtype=torch.float64))


def test_ssim_hand_computed_global_window():
    # A 2x2 frame with a 2x2 uniform window has exactly one window position; SSIM uses population statistics.
    # C1 = (0.01 * 2)^2 = 0.0004, C2 = (0.03 * 2)^2 = 0.0036.
    c1, c2 = 0.0004, 0.0036
    x = torch.tensor([[1.0, -1.0], [1.0, -1.0]]).reshape(1, 1, 2, 2)  # mean 0, var 1
    y = x / 2  # mean 0, var 0.25, cov 0.5
    # SSIM = (2*0*0 + C1)(2*0.5 + C2) / ((0 + 0 + C1)(1 + 0.25 + C2)) = 1.0036 / 1.2536 = 0.80057...
    expected = (c1 * (1 + c2)) / (c1 * (1.25 + c2))
    assert abs(float(ssim(y, x, window_size=2, window="uniform")) - expected) < 1e-12
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]]).reshape(1, 1, 2, 2)  # mean 0, var 1, cov with x = 0
    # SSIM = C1 * C2 / (C1 * (1 + 1 + C2)) = 0.0036 / 2.0036 = 0.0017967...
    assert abs(float(ssim(z, x, window_size=2, window="uniform")) - c2 / (2 + c2)) < 1e-12


def _numpy_ssim_uniform(x: np.ndarray, y: np.ndarray, win: int, data_range: float = 2.0) -> float:
    """Direct transcription of the SSIM formula with a win x win box window and valid positions."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    scores = []
    for i in range(x.shape[0] - win + 1):
        for j in range(x.shape[1] - win + 1):
            a, b = x[i : i + win, j : j + win], y[i : i + win, j : j + win]
            mu_a, mu_b = a.mean(), b.mean()
            var_a, var_b = a.var(), b.var()  # population variance, like the weighted window
            cov = ((a - mu_a) * (b - mu_b)).mean()
            scores.append(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(scores))


def test_ssim_matches_numpy_formula_and_averages_channels_and_frames():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(2, 2, 6, 5))  # [C=2, T=2, H=6, W=5]
    y = np.clip(x + rng.normal(scale=0.3, size=x.shape), -1, 1)
    expected = np.mean([_numpy_ssim_uniform(x[c, t], y[c, t], 3) for c in range(2) for t in range(2)])
    assert abs(float(ssim(y, x, window_size=3, window="uniform")) - expected) < 1e-10


def test_ssim_gaussian_window_is_normalised():
    # A constant offset d leaves variances/covariance at 0, so SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    # whatever the (normalised) window: mu_x = 0.5, mu_y = 0 -> C1 / (0.25 + C1) = 0.0004 / 0.2504.
    x = torch.full((3, 1, 11, 11), 0.5)
    y = torch.zeros(3, 1, 11, 11)
    assert abs(float(ssim(x, y)) - 0.0004 / 0.2504) < 1e-12


# ------------------------------------------------------------------------------------------ token statistics


def test_bits_per_pixel_known_grid():
    # Level 0: [1, 2, 4, 4] = 32 tokens, level 1: [1, 1, 2, 2] = 4 tokens; K = 10 -> 360 bits.
    # Video [3, T=4, H=16, W=16] -> 1024 pixels -> bpp = 360 / 1024 = 0.3515625.
    level0 = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    level0[:, 1] = 1  # half zeros, half ones -> entropy 1 bit
    level1 = torch.full((1, 1, 2, 2), 7, dtype=torch.long)  # constant -> entropy 0 bits
    assert bits_per_pixel([level0, level1], 10, (3, 4, 16, 16)) == 360 / 1024
    # Entropy coding: 32 tokens * 1 bit + 4 tokens * 0 bits = 32 bits -> 32 / 1024 = 0.03125.
    assert bits_per_pixel_entropy([level0, level1], (3, 4, 16, 16)) == pytest.approx(32 / 1024)
    # Per-level K and a batch shape: K = (10, 4) -> 320 + 16 = 336 bits over 2 videos of 1024 pixels.
    assert bits_per_pixel([level0, level1], [10, 4], (2, 3, 4, 16, 16)) == 336 / 2048
    # The video tensor itself can be given instead of its shape.
    assert bits_per_pixel(level0.numpy(), 1, torch.zeros(3, 4, 16, 16)) == 32 / 1024


def test_codebook_usage_uniform_perplexity_and_fractions():
    # Uniform over 4 codes: entropy 2 bits, perplexity 2^2 = 4; with K = 2 all 4 codes are used.
    stats = codebook_usage([torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])], 2)[0]
    assert stats["used_codes"] == 4 and stats["num_tokens"] == 8
    assert stats["perplexity"] == pytest.approx(4.0)
    assert stats["usage_fraction_codebook"] == 1.0 and stats["usage_fraction_reachable"] == 1.0
    # K = 8: 4 used of 256 codes -> 4/256 = 0.015625; only 8 tokens -> reachable 4 / min(256, 8) = 0.5.
    stats = codebook_usage(torch.tensor([0, 1, 2, 3, 3, 2, 1, 0]), 8)[0]
    assert stats["usage_fraction_codebook"] == 4 / 256 and stats["usage_fraction_reachable"] == 0.5
    # p = (3/4, 1/4): entropy = 0.8113 bits, perplexity = exp(H_nats) = 4 / 3^(3/4) = 1.7548.
    stats = codebook_usage([torch.tensor([5, 5, 5, 9])], 4)[0]
    assert stats["perplexity"] == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))


def test_codebook_usage_k64_negative_ids_without_allocating_codebook():
    # 64-bit ids stored as int64 two's complement: -1 is 2^64 - 1. Two codes used, each twice -> perplexity 2.
    ids = torch.tensor([-1, -1, 2**62, 2**62], dtype=torch.int64)
    stats = codebook_usage([ids], 64)[0]
    assert stats["used_codes"] == 2 and stats["perplexity"] == pytest.approx(2.0)
    assert stats["usage_fraction_codebook"] == 2 / 2**64
    assert stats["usage_fraction_reachable"] == 0.5  # 2 / min(2^64, 4 tokens)
    # numpy uint64 ids are reinterpreted the same way.
    stats_np = codebook_usage([np.array([2**64 - 1, 2**64 - 1, 2**62, 2**62], dtype=np.uint64)], 64)[0]
    assert stats_np == stats
    assert bits_per_pixel([ids], 64, (1, 2, 2)) == 4 * 64 / 4


def test_codebook_usage_accumulator_matches_one_shot():
    rng = np.random.default_rng(1)
    batches = [[rng.integers(0, 16, size=(2, 4)), rng.integers(0, 4, size=(2, 2))] for _ in range(3)]
    acc = CodebookUsageAccumulator([4, 2])
    for batch in batches:
        acc.update(batch)
    pooled = [np.concatenate([b[level].ravel() for b in batches]) for level in range(2)]
    for streamed, one_shot in zip(acc.compute(), codebook_usage(pooled, [4, 2])):
        assert streamed == pytest.approx(one_shot)


# --------------------------------------------------------------------------------------------------- retrieval


def test_retrieval_permutation_matrix():
    # similarity = rows of the identity permuted by (1, 0, 2, 3). With diagonal ground truth, texts 2 and 3 rank
    # their video first; texts 0 and 1 score 0 on their video and tie with 3 negatives scoring 0 -> rank 4
    # (ties count against the query). Ranks (4, 4, 1, 1): R@1 = 0.5, R@5 = 1, median = mean = 2.5.
    sim = torch.eye(4)[[1, 0, 2, 3]]
    result = retrieval_metrics(sim)
    assert result["t2v_R@1"] == 0.5 and result["t2v_R@5"] == 1.0 and result["t2v_R@10"] == 1.0
    assert result["t2v_median_rank"] == 2.5 and result["t2v_mean_rank"] == 2.5
    assert result["v2t_R@1"] == 0.5
    # With the permutation as ground truth every query ranks its match first.
    perfect = retrieval_metrics(sim, positives=[{1}, {0}, 2, [3]])
    assert perfect["t2v_R@1"] == perfect["v2t_R@1"] == 1.0 and perfect["v2t_mean_rank"] == 1.0


def test_retrieval_multiple_positives():
    # Texts 0, 1 describe video 0; texts 2, 3 describe video 1.
    sim = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    result = retrieval_metrics(sim, positives=[{0}, {0}, {1}, {1}])
    # t2v ranks: t0 1 (0.9 > 0.1), t1 2 (0.2 < 0.8), t2 1, t3 2 -> R@1 = 0.5, mean = median = 1.5.
    assert result["t2v_R@1"] == 0.5 and result["t2v_mean_rank"] == 1.5 and result["t2v_median_rank"] == 1.5
    # v2t: v0's best positive is t0 (0.9) -> rank 1; v1's best positive is t2 (0.7) but negative t1 has 0.8 -> 2.
    assert result["v2t_R@1"] == 0.5 and result["v2t_R@5"] == 1.0 and result["v2t_mean_rank"] == 1.5


def test_retrieval_from_features_uses_cosine():
    # Video features are scaled copies of the text features: cosine similarity is the identity up to scale.
    text = torch.eye(3)
    result = retrieval_metrics(text_features=text, video_features=5 * text + 0.01 * torch.ones(3, 3))
    assert result["t2v_R@1"] == 1.0 and result["v2t_R@1"] == 1.0


# --------------------------------------------------------------------------------- temporal action localization


def test_temporal_iou():
    # [0, 2] vs [1, 3]: intersection 1, union 2 + 2 - 1 = 3 -> 1/3; identical -> 1; disjoint -> 0.
    iou = temporal_iou([0.0, 2.0], [[1.0, 3.0], [0.0, 2.0], [5.0, 6.0]])
    assert iou.shape == (3,) and torch.allclose(iou, torch.tensor([1 / 3, 1.0, 0.0], dtype=torch.float64))
    assert temporal_iou([[0, 4], [2, 3]], [[1, 2]]).shape == (2, 1)
    assert float(temporal_iou([1, 1], [1, 1])) == 0.0  # zero-length union is defined as 0
    assert len(ACTIVITYNET_TIOU_THRESHOLDS) == 10 and ACTIVITYNET_TIOU_THRESHOLDS[-1] == 0.95
    assert THUMOS14_TIOU_THRESHOLDS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def test_average_precision_by_hand():
    # Ranked list FP, TP, TP with 3 ground-truth instances: precision at the TPs = 1/2, 2/3.
    # Plain (no envelope): (1/2 + 2/3) / 3 = 7/18.
    assert average_precision([False, True, True], 3, precision_envelope=False) == pytest.approx(7 / 18)
    # VOC all-points envelope: precision at recall 1/3 becomes max(1/2, 2/3) = 2/3 -> (1/3)(2/3) + (1/3)(2/3) = 4/9.
    assert average_precision([False, True, True], 3) == pytest.approx(4 / 9)
    assert average_precision([], 2) == 0.0


def test_tal_map_hand_computed():
    gt = [("v1", "a", 0, 10), ("v1", "a", 20, 30), ("v1", "a", 40, 50), ("v2", "b", 0, 10)]
    preds = [
        ("v1", "a", 21, 30, 0.9),  # tIoU 0.9 with [20, 30] -> TP at both thresholds
        ("v1", "a", 60, 70, 0.8),  # no overlap -> FP
        ("v1", "a", 0, 5, 0.7),  # tIoU 0.5 with [0, 10] -> TP at 0.5, FP at 0.7
        ("v1", "a", 20, 29, 0.6),  # [20, 30] already taken -> duplicate, FP
        ("v1", "c", 0, 10, 0.99),  # class absent from the ground truth -> ignored
    ]
    result = temporal_action_localization_map(preds, gt, tiou_thresholds=(0.5, 0.7))
    # Class a, tIoU 0.5: T F T F, 3 GT -> recall 1/3 @ precision 1, recall 2/3 @ 2/3 -> AP = 1/3 + 2/9 = 5/9.
    # Class a, tIoU 0.7: T F F F -> AP = 1/3.  Class b has no detection -> AP 0.
    assert result["AP_per_class"]["a"] == pytest.approx([5 / 9, 1 / 3])
    assert result["AP_per_class"]["b"] == [0.0, 0.0]
    assert set(result["AP_per_class"]) == {"a", "b"}
    # mAP per threshold averages classes a and b: (5/9)/2 = 5/18 and (1/3)/2 = 1/6; mean = (5/18 + 3/18)/2 = 2/9.
    assert result["mAP_per_threshold"] == pytest.approx({0.5: 5 / 18, 0.7: 1 / 6})
    assert result["mAP"] == pytest.approx(2 / 9)


def test_tal_greedy_matching_takes_highest_tiou():
    # Prediction 1 overlaps both GT; it must consume [5, 15] (tIoU 0.9), not [0, 10] (5/14), leaving [0, 10] for
    # prediction 2 (tIoU 0.9). Both TPs -> AP 1 at tIoU 0.5.
    gt = [("v", 0, 0, 10), ("v", 0, 5, 15)]
    preds = [("v", 0, 5, 14, 0.9), ("v", 0, 0, 9, 0.8)]
    assert temporal_action_localization_map(preds, gt, [0.5])["mAP"] == 1.0
    # No predictions at all is valid and scores 0; detections in a video without GT are false positives.
    assert temporal_action_localization_map([], gt)["mAP"] == 0.0
    half = temporal_action_localization_map([("w", 0, 0, 10, 0.95)] + preds, gt, [0.5])
    # F T T with 2 GT -> envelope precision 2/3 at recall 1/2 and 1 -> AP = 2/3.
    assert half["mAP"] == pytest.approx(2 / 3)


# ------------------------------------------------------------------------------------------------ segmentation


def _two_object_masks():
    pred = np.zeros((2, 2, 2, 2), dtype=bool)  # [O, T, H, W]
    ref = np.zeros((2, 2, 2, 2), dtype=bool)
    # Object 0, frame 0: pred top row, GT top-left pixel -> I 1, U 2 -> 0.5. Frame 1: both empty -> 1.
    pred[0, 0, 0, :] = True
    ref[0, 0, 0, 0] = True
    # Object 1, frame 0: pred everything, GT top row -> I 2, U 4 -> 0.5. Frame 1: pred empty, GT 1 pixel -> 0.
    pred[1, 0] = True
    ref[1, 0, 0, :] = True
    ref[1, 1, 0, 0] = True
    return pred, ref


def test_jaccard_and_per_frame_iou():
    pred, ref = _two_object_masks()
    assert per_frame_iou(pred, ref).tolist() == [[0.5, 1.0], [0.5, 0.0]]
    # J: object 0 (0.5 + 1) / 2 = 0.75, object 1 (0.5 + 0) / 2 = 0.25 -> mean 0.5.
    assert jaccard_j(pred, ref) == 0.5
    assert jaccard_j(pred[0], ref[0]) == 0.75
    # Both empty everywhere -> J = 1 by the DAVIS convention.
    assert jaccard_j(np.zeros((3, 2, 2)), np.zeros((3, 2, 2))) == 1.0


def test_mean_iou_over_queries_and_classes():
    pred, ref = _two_object_masks()
    result = mean_iou(torch.from_numpy(pred), torch.from_numpy(ref).to(torch.uint8))
    # Pooled over frames: object 0 I 1 / U 2 = 0.5; object 1 I 2 / U 5 = 0.4 -> mIoU 0.45; overall 3 / 7.
    assert result["per_query_iou"] == pytest.approx([0.5, 0.4])
    assert result["mIoU"] == pytest.approx(0.45) and result["overall_iou"] == pytest.approx(3 / 7)
    # Label maps: pred (0, 0, 1, 1, 2), ref (0, 1, 1, 1, 0), 4 classes.
    # class 0: I 1, U 2 + 2 - 1 = 3 -> 1/3; class 1: I 2, U 2 + 3 - 2 = 3 -> 2/3; class 2: I 0, U 1 -> 0;
    # class 3 absent everywhere -> nan, excluded. mIoU = (1/3 + 2/3 + 0) / 3 = 1/3.
    labels = class_mean_iou(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), num_classes=4)
    assert labels["mIoU"] == pytest.approx(1 / 3) and math.isnan(labels["per_class_iou"][3])
    # ignore_index drops the last pixel from both maps: class 0 I 1, U 2 + 1 - 1 = 2 -> 0.5; class 1 as before;
    # class 2 was only predicted on the ignored pixel -> absent -> nan. mIoU = (1/2 + 2/3) / 2 = 7/12.
    ignored = class_mean_iou(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 255]), 4, ignore_index=255)
    assert ignored["per_class_iou"][:2] == pytest.approx([0.5, 2 / 3]) and math.isnan(ignored["per_class_iou"][2])
    assert ignored["mIoU"] == pytest.approx(7 / 12)


# --------------------------------------------------------------------------------------------------------- FVD


def test_frechet_distance_closed_forms():
    # 1-D: N(0, 4) vs N(3, 1): 3^2 + 4 + 1 - 2 sqrt(4 * 1) = 10.
    assert frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(10.0)
    # Diagonal 2-D: means (0, 0), (1, 2); covariances diag(1, 4), diag(4, 9):
    # 1 + 4 + (1 + 4) + (4 + 9) - 2 (sqrt(4) + sqrt(36)) = 5 + 18 - 16 = 7.
    assert frechet_distance([0, 0], np.diag([1.0, 4.0]), [1, 2], np.diag([4.0, 9.0])) == pytest.approx(7.0)


def test_frechet_distance_matches_scipy_and_is_stable():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 6))
    b = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6)) + 1.0  # non-commuting covariances
    (m1, s1), (m2, s2) = gaussian_statistics(a), gaussian_statistics(b)
    s1n, s2n = s1.numpy(), s2.numpy()
    reference = (
        float(((m1 - m2) ** 2).sum()) + np.trace(s1n) + np.trace(s2n) - 2 * np.trace(scipy.linalg.sqrtm(s1n @ s2n).real)
    )
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(reference, rel=1e-8)
    # Fewer samples than dimensions: singular covariances still give a real, finite, non-negative value.
    few = rng.normal(size=(3, 32))
    value = frechet_distance(*gaussian_statistics(few), *gaussian_statistics(few))
    assert 0.0 <= value < 1e-6


def test_fvd_metric_streaming_closed_form():
    # Identity "feature network" via update_features. Real features {(1,0), (-1,0), (0,2), (0,-2)}: mean 0,
    # unbiased covariance diag(2/3, 8/3). Generated = 2 * real + (3, 4): mean (3, 4), covariance diag(8/3, 32/3).
    # FD = 25 + (2/3 + 8/3) + (8/3 + 32/3) - 2 (sqrt(16/9) + sqrt(256/9)) = 25 + 50/3 - 40/3 = 28.3333.
    real = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    fvd = FVDMetric(feature_extractor=lambda v: v)
    fvd.update_features(real[:1], real=True)  # streamed in uneven chunks on purpose
    fvd.update_features(real[1:], real=True)
    fvd.update_features(2 * real[:3] + torch.tensor([3.0, 4.0]), real=False)
    fvd.update_features(2 * real[3:] + torch.tensor([3.0, 4.0]), real=False)
    assert fvd.compute() == pytest.approx(25 + 10 / 3)
    fvd.reset()
    fvd.update_features(real, real=True)
    fvd.update_features(real, real=False)
    assert fvd.compute() == pytest.approx(0.0, abs=1e-9)


def test_fvd_random_i3d_like_path():
    torch.manual_seed(123)
    videos = torch.rand(4, 3, 4, 16, 16) * 2 - 1
    net_a, net_b = RandomI3DLike(seed=0), RandomI3DLike(seed=0)
    assert torch.equal(net_a(videos), net_b(videos))  # seeded: independent of the global RNG
    assert net_a(videos).shape == (4, 64)
    fvd = FVDMetric()
    fvd.update(videos, real=True)
    fvd.update(videos, real=False)
    assert fvd.compute() == pytest.approx(0.0, abs=1e-6)
    fvd.update(-videos, real=False)
    assert fvd.compute() > 0 and fvd.num_real == 4 and fvd.num_generated == 8


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch 2.13 flags torch.jit as deprecated
def test_torchscript_i3d_wrapper(tmp_path):
    # A scripted stand-in with the StyleGAN-V signature checks the loading path without real weights.
    class FakeI3D(torch.nn.Module):
        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False):
            return x.mean(dim=(2, 3, 4))

    torch.jit.save(torch.jit.script(FakeI3D()), str(tmp_path / "i3d_torchscript.pt"))
    extractor = TorchScriptI3D(tmp_path)  # a folder holding i3d_torchscript.pt
    # [-1, 1] -> [0, 255]: a video of zeros becomes 127.5 everywhere.
    assert torch.allclose(extractor(torch.zeros(2, 3, 2, 4, 4)), torch.full((2, 3), 127.5))
    with pytest.raises(MetricInputError, match="never downloads"):
        TorchScriptI3D(tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------------- evaluate modules


def test_every_evaluate_module_has_a_script():
    for name in EVALUATE_MODULE_NAMES:
        assert evaluate_module_path(name).is_file()
    with pytest.raises(MetricInputError, match="unknown metric"):
        evaluate_module_path("bleu")


def test_evaluate_psnr_and_ssim():
    video = np.zeros((2, 3, 2, 12, 12), dtype=np.float32)
    result = load_metric("psnr").compute(predictions=video + 0.5, references=video)
    # Offset 0.5 -> MSE 0.25 -> 10 log10(4 / 0.25) = 12.0412 dB for both videos.
    assert result["psnr"] == pytest.approx(10 * math.log10(16))
    metric = load_metric("ssim")
    metric.add_batch(predictions=video[:1], references=video[:1])
    metric.add_batch(predictions=video[1:], references=video[1:])
    assert metric.compute()["ssim"] == pytest.approx(1.0)


def test_evaluate_token_metrics():
    # Two videos of T*H*W = 16 pixels; level 0 has 4 distinct ids per video, level 1 one id per video.
    token_ids = [[np.arange(4), np.array([0])], [np.arange(4), np.array([1])]]
    result = load_metric("bits_per_pixel").compute(token_ids=token_ids, num_pixels=[16, 16], codebook_bits=2)
    # bpp = (8 + 2) tokens * 2 bits / 32 pixels = 0.625; entropy: level 0 uniform over 4 -> 2 bits * 8 tokens,
    # level 1 uniform over 2 -> 1 bit * 2 tokens -> 18 / 32 = 0.5625.
    assert result == pytest.approx({"bpp": 0.625, "bpp_entropy": 0.5625})
    usage = load_metric("codebook_usage").compute(token_ids=token_ids, codebook_bits=2)
    assert usage["level_0/perplexity"] == pytest.approx(4.0) and usage["level_1/used_codes"] == 2
    assert usage["level_1/usage_fraction_codebook"] == 0.5 and usage["level_1/usage_fraction_reachable"] == 1.0


def test_evaluate_retrieval_tal_segmentation():
    sim = np.eye(4)[[1, 0, 2, 3]]
    result = load_metric("video_text_retrieval").compute(predictions=sim, references=[[0], [1], [2], [3]])
    assert result == pytest.approx(retrieval_metrics(sim))

    tal = load_metric("temporal_action_localization").compute(
        predictions=[
            [
                {"label": "a", "start": 21.0, "end": 30.0, "score": 0.9},
                {"label": "a", "start": 0.0, "end": 5.0, "score": 0.7},
            ],
            [],
        ],
        references=[
            [{"label": "a", "start": 0.0, "end": 10.0}, {"label": "a", "start": 20.0, "end": 30.0}],
            [{"label": "b", "start": 0.0, "end": 1.0}],
        ],
        video_ids=["v1", "v2"],
        tiou_thresholds=[0.5, 0.7],
    )
    # Class a: both TP at 0.5 (AP 1), only the first at 0.7 (AP 1/2); class b AP 0 -> 0.5, 0.25, mean 0.375.
    assert tal == pytest.approx({"mAP": 0.375, "mAP@0.5": 0.5, "mAP@0.7": 0.25})

    pred, ref = _two_object_masks()
    seg = load_metric("video_segmentation").compute(predictions=pred, references=ref)
    assert seg == pytest.approx({"J": 0.5, "mIoU": 0.45, "overall_iou": 3 / 7})


def test_evaluate_fvd_random_network():
    rng = np.random.default_rng(0)
    videos = rng.uniform(-1, 1, size=(3, 3, 2, 8, 8)).astype(np.float32)
    result = load_metric("fvd").compute(predictions=videos, references=videos, batch_size=2)
    assert result["fvd"] == pytest.approx(0.0, abs=1e-6)
    assert result["feature_network"].startswith("random_i3d_like")


def test_evaluate_modules_raise_metric_input_error():
    video = np.zeros((2, 3, 1, 11, 11), dtype=np.float32)
    with pytest.raises(MetricInputError, match="pair up"):
        load_metric("psnr").compute(predictions=video, references=video[:1])
    with pytest.raises(MetricInputError, match="no examples"):
        load_metric("ssim").compute()
    with pytest.raises(MetricInputError, match="codebook_bits"):
        load_metric("codebook_usage").compute(token_ids=[[[0, 1]]])


# ------------------------------------------------------------------------------------------------ error cases

_VIDEO = torch.zeros(1, 3, 2, 11, 11)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: psnr(_VIDEO, _VIDEO[:, :, :1]), "does not match"),
        (lambda: psnr(_VIDEO[0, 0], _VIDEO[0, 0]), "rank"),
        (lambda: psnr(torch.full_like(_VIDEO, math.nan), _VIDEO), "NaN"),
        (lambda: psnr(torch.zeros(0, 3, 1, 2, 2), torch.zeros(0, 3, 1, 2, 2)), "empty"),
        (lambda: psnr(_VIDEO, _VIDEO, data_range=0), "data_range"),
        (lambda: ssim(torch.zeros(3, 1, 4, 4), torch.zeros(3, 1, 4, 4)), "smaller than"),
        (lambda: bits_per_pixel([torch.tensor([0, 1])], 0, (1, 1, 1)), "codebook_bits"),
        (lambda: bits_per_pixel([torch.tensor([0, 1])], 65, (1, 1, 1)), "codebook_bits"),
        (lambda: bits_per_pixel([torch.tensor([0, 4])], 2, (1, 1, 1)), "outside"),
        (lambda: bits_per_pixel([torch.tensor([-1])], 63, (1, 1, 1)), "outside"),
        (lambda: bits_per_pixel([torch.tensor([0.5])], 2, (1, 1, 1)), "integers"),
        (lambda: bits_per_pixel([], 2, (1, 1, 1)), "empty"),
        (lambda: bits_per_pixel([torch.tensor([0])], 2, (1, 0, 1)), "no pixels"),
        (lambda: codebook_usage([torch.zeros(0, dtype=torch.long)], 4), "empty"),
        (lambda: codebook_usage([torch.tensor([1]), torch.tensor([1])], [4]), "levels"),
        (lambda: retrieval_metrics(torch.zeros(2, 3)), "square"),
        (lambda: retrieval_metrics(torch.zeros(2, 2), positives=[{0}, {5}]), "outside"),
        (lambda: retrieval_metrics(torch.zeros(2, 2), positives=[{0}, {0}]), "video 1 has no positive"),
        (lambda: retrieval_metrics(torch.tensor([[math.nan]])), "NaN"),
        (lambda: retrieval_metrics(), "either"),
        (lambda: temporal_iou([2.0, 1.0], [0.0, 1.0]), "end is before"),
        (lambda: temporal_action_localization_map([], []), "ground_truth is empty"),
        (lambda: temporal_action_localization_map([("v", 0, 0, 1)], [("v", 0, 0, 1)]), "expected"),
        (lambda: temporal_action_localization_map([("v", 0, 0, 1, math.nan)], [("v", 0, 0, 1)]), "NaN"),
        (lambda: temporal_action_localization_map([], [("v", 0, 0, 1)], tiou_thresholds=[1.5]), "thresholds"),
        (lambda: jaccard_j(np.zeros((2, 2, 2)), np.zeros((2, 2, 3))), "shape"),
        (lambda: jaccard_j(np.full((1, 2, 2), 0.5), np.zeros((1, 2, 2))), "binary"),
        (lambda: jaccard_j(np.zeros((2, 2)), np.zeros((2, 2))), "masks must be"),
        (lambda: class_mean_iou(np.array([0, 5]), np.array([0, 1]), 2), "outside"),
        (lambda: class_mean_iou(np.array([0]), np.array([255]), 2, ignore_index=255), "no labelled"),
        (lambda: gaussian_statistics(np.zeros((1, 3))), "at least 2"),
        (lambda: frechet_distance([0, 0], np.eye(2), [0], np.eye(1)), "inconsistent"),
        (lambda: average_precision([True, True], 1), "more true positives"),
    ],
)
def test_bad_inputs_raise_metric_input_error(call, message):
    with pytest.raises(MetricInputError, match=message) as info:
        call()
    assert isinstance(info.value, PyraTokError) and isinstance(info.value, ValueError)


def test_fvd_metric_errors():
    fvd = FVDMetric(feature_extractor=lambda v: v.flatten(1))
    with pytest.raises(MetricInputError, match="at least 2 real"):
        fvd.compute()
    fvd.update(torch.zeros(2, 3, 1, 2, 2), real=True)
    with pytest.raises(MetricInputError, match="feature dimension changed"):
        fvd.update(torch.zeros(2, 3, 1, 2, 3), real=False)
    with pytest.raises(MetricInputError, match=r"\[B=2, D\]"):
        FVDMetric(feature_extractor=lambda v: v.sum()).update(torch.zeros(2, 3, 1, 2, 2), real=True)
    with pytest.raises(MetricInputError, match="videos must be"):
        fvd.update(torch.zeros(3, 2, 2), real=True)
