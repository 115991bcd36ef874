"""Frechet Video Distance with a pluggable feature network.

FVD (Unterthiner et al., 2018) fits a Gaussian to video features of real and of generated/reconstructed videos
and reports the Frechet distance between the two fits. The published numbers use an I3D network trained on
Kinetics-400; its weights cannot be downloaded by this package (offline use, licensing), so:

* :class:`RandomI3DLike` is a small, seeded, randomly initialised 3-D conv net. It makes FVD runnable anywhere
  (tests, smoke runs, relative comparisons between checkpoints under the *same* seed), but its values are NOT
  comparable with FVD numbers reported in papers.
* :class:`TorchScriptI3D` wraps the community TorchScript export ``i3d_torchscript.pt`` (StyleGAN-V convention)
  from a path you provide, giving paper-comparable features::

      from pyratok_hf.metrics.fvd import FVDMetric, TorchScriptI3D
      fvd = FVDMetric(TorchScriptI3D("/models/fvd/i3d_torchscript.pt"))

Statistics are accumulated in a streaming fashion (mean and scatter matrix, merged per batch with Chan's
parallel update), so arbitrarily many videos can be fed through :meth:`FVDMetric.update` without storing
features.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pyratok_hf.errors import MetricInputError
from pyratok_hf.metrics.functional import _to_float64, frechet_distance

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]

I3D_TORCHSCRIPT_FILENAME = "i3d_torchscript.pt"

__all__ = ["FVDMetric", "RandomI3DLike", "TorchScriptI3D", "load_i3d_torchscript", "I3D_TORCHSCRIPT_FILENAME"]


class RandomI3DLike(nn.Module):
    """Tiny randomly initialised 3-D CNN standing in for I3D when no real weights are available.

    The weights are drawn from a private ``torch.Generator`` seeded with ``seed``, so two instances with the
    same seed compute the same features regardless of the global RNG state. Padding keeps every stride valid
    for any ``T, H, W >= 1``. Input: ``[B, 3, T, H, W]`` in ``[-1, 1]``; output: ``[B, feature_dim]``.
    """

    def __init__(self, feature_dim: int = 64, seed: int = 0, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv3d(in_channels, width, kernel_size=3, stride=(1, 2, 2), padding=1),
            nn.ReLU(),
            nn.Conv3d(width, 2 * width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv3d(2 * width, feature_dim, kernel_size=3, stride=2, padding=1),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )
        generator = torch.Generator().manual_seed(seed)
        for module in self.features:
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
                nn.init.uniform_(module.bias, -0.1, 0.1, generator=generator)
        self.requires_grad_(False)
        self.eval()

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self.features(videos)


class TorchScriptI3D:
    """Feature extractor around a user-supplied ``i3d_torchscript.pt`` (never downloaded here).

    The StyleGAN-V export takes ``[B, 3, T, H, W]`` videos with values in ``[0, 255]`` and keyword arguments
    ``rescale``/``resize``/``return_features``; with the defaults below it rescales to ``[-1, 1]``, resizes to
    224x224 and returns the 400-d pre-logit features used for FVD. This wrapper converts this package's
    ``[-1, 1]`` videos to ``[0, 255]`` first.

    Args:
        path: the ``.pt`` file, or a directory containing ``i3d_torchscript.pt``.
        device: where the network runs.
        detector_kwargs: keyword arguments for the scripted module's forward.
    """

    def __init__(
        self, path: str | os.PathLike, device: str | torch.device = "cpu", detector_kwargs: dict[str, Any] | None = None
    ) -> None:
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, I3D_TORCHSCRIPT_FILENAME)
        if not os.path.isfile(path):
            raise MetricInputError(
                f"I3D TorchScript weights not found at {path!r}. pyratok-hf never downloads them: obtain "
                f"{I3D_TORCHSCRIPT_FILENAME} (the StyleGAN-V export of the Kinetics-400 I3D) and pass its path."
            )
        self.path = path
        self.device = torch.device(device)
        self.detector_kwargs = (
            dict(rescale=True, resize=True, return_features=True) if detector_kwargs is None else dict(detector_kwargs)
        )
        self.model = torch.jit.load(path, map_location=self.device).eval()

    @torch.no_grad()
    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        scaled = (videos.clamp(-1, 1) + 1) * 127.5
        return self.model(scaled.to(self.device, torch.float32), **self.detector_kwargs)


def load_i3d_torchscript(path: str | os.PathLike, device: str | torch.device = "cpu") -> TorchScriptI3D:
    """Shorthand for :class:`TorchScriptI3D`; the returned callable plugs into :class:`FVDMetric`."""
    return TorchScriptI3D(path, device=device)


class _GaussianAccumulator:
    """Running mean and scatter matrix of feature vectors (Chan et al. parallel update, float64)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.scatter: torch.Tensor | None = None

    def update(self, features: torch.Tensor) -> None:
        batch_count = features.shape[0]
        batch_mean = features.mean(dim=0)
        centered = features - batch_mean
        batch_scatter = centered.T @ centered
        if self.count == 0:
            self.count, self.mean, self.scatter = batch_count, batch_mean, batch_scatter
            return
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (batch_count / total)
        self.scatter = self.scatter + batch_scatter + torch.outer(delta, delta) * (self.count * batch_count / total)
        self.count = total

    def covariance(self) -> torch.Tensor:
        return self.scatter / (self.count - 1)


class FVDMetric:
    """Streaming Frechet Video Distance between "real" and "generated" video sets.

    Args:
        feature_extractor: callable mapping ``[B, 3, T, H, W]`` videos in ``[-1, 1]`` to ``[B, D]`` features.
            Defaults to ``RandomI3DLike(seed=0)`` (not comparable with published FVD; see module docstring).
        device: device videos are moved to before feature extraction.

    Usage::

        fvd = FVDMetric()
        for real, fake in loader:
            fvd.update(real, real=True)
            fvd.update(fake, real=False)
        score = fvd.compute()
    """

    def __init__(self, feature_extractor: FeatureExtractor | None = None, device: str | torch.device = "cpu") -> None:
        self.feature_extractor = feature_extractor if feature_extractor is not None else RandomI3DLike(seed=0)
        if not callable(self.feature_extractor):
            raise MetricInputError("feature_extractor must be callable: [B, 3, T, H, W] -> [B, D].")
        self.device = torch.device(device)
        if isinstance(self.feature_extractor, nn.Module):
            self.feature_extractor.to(self.device)
        self.reset()

    def reset(self) -> None:
        """Forget all accumulated statistics."""
        self._real = _GaussianAccumulator()
        self._fake = _GaussianAccumulator()
        self._dim: int | None = None

    @property
    def num_real(self) -> int:
        return self._real.count

    @property
    def num_generated(self) -> int:
        return self._fake.count

    @torch.no_grad()
    def extract_features(self, videos: Any) -> torch.Tensor:
        """Run the feature network on one batch and validate its ``[B, D]`` output."""
        clips = _to_float64(videos, "videos")
        if clips.ndim == 4:
            clips = clips.unsqueeze(0)
        if clips.ndim != 5:
            raise MetricInputError(f"videos must be [B, 3, T, H, W] or [3, T, H, W], got shape {tuple(clips.shape)}.")
        features = self.feature_extractor(clips.to(self.device, torch.float32))
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != clips.shape[0]:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise MetricInputError(f"feature_extractor must return [B={clips.shape[0]}, D] features, got {shape}.")
        return features

    def update(self, videos: Any, real: bool) -> None:
        """Add a batch of videos to the real (``real=True``) or generated (``real=False``) set."""
        self.update_features(self.extract_features(videos), real=real)

    def update_features(self, features: Any, real: bool) -> None:
        """Add precomputed ``[B, D]`` features (e.g. cached I3D activations) to one of the two sets."""
        feats = _to_float64(features, "features")
        if feats.ndim != 2:
            raise MetricInputError(f"features must be [B, D], got shape {tuple(feats.shape)}.")
        if self._dim is None:
            self._dim = feats.shape[1]
        elif feats.shape[1] != self._dim:
            raise MetricInputError(f"feature dimension changed from {self._dim} to {feats.shape[1]} between updates.")
        (self._real if real else self._fake).update(feats)

    def compute(self) -> float:
        """FVD between the two accumulated sets; each needs at least 2 videos for a covariance."""
        for name, acc in (("real", self._real), ("generated", self._fake)):
            if acc.count < 2:
                raise MetricInputError(f"FVD needs at least 2 {name} videos, got {acc.count}.")
        return frechet_distance(self._real.mean, self._real.covariance(), self._fake.mean, self._fake.covariance())
