"""Pictures people would rather look at: side-by-side reconstructions and the token pyramid.

The token pyramid is drawn like the paper's Fig. 4: for each level, the K-bit codes of one latent frame are
projected onto their first three principal components (computed per level over all its tokens) and shown as
RGB, so tokens with similar codes get similar colours. Coarse levels show few large cells, fine levels many.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .quantizer import ids_to_codes  # noqa: E402
from .video_io import atomic_write, to_uint8_frames  # noqa: E402


def _codes_to_rgb(codes: torch.Tensor) -> np.ndarray:
    """``[t, h, w, K]`` ±1 codes -> ``[t, h, w, 3]`` colours from a PCA of the codes."""
    flat = codes.reshape(-1, codes.shape[-1]).double()
    flat = flat - flat.mean(0, keepdim=True)
    if flat.shape[0] >= 2 and torch.count_nonzero(flat) > 0:
        _, _, v = torch.linalg.svd(flat, full_matrices=False)
        proj = flat @ v[:3].t()
    else:
        proj = torch.zeros(flat.shape[0], 3, dtype=torch.float64)
    if proj.shape[1] < 3:
        proj = torch.cat([proj, torch.zeros(proj.shape[0], 3 - proj.shape[1], dtype=proj.dtype)], 1)
    low, high = proj.min(0).values, proj.max(0).values
    rgb = (proj - low) / (high - low).clamp_min(1e-9)
    return rgb.reshape(*codes.shape[:-1], 3).numpy()


def plot_token_pyramid(token_ids, codebook_bits: int, path: str, frame: int | None = None, title: str | None = None) -> str:
    """One panel per level (coarse -> fine) for latent frame ``frame`` (default: the middle one) of video 0."""
    levels = [ids[0] for ids in token_ids]
    t = levels[-1].shape[0]
    frame = t // 2 if frame is None else frame
    fig, axes = plt.subplots(1, len(levels), figsize=(3 * len(levels), 3.3))
    axes = np.atleast_1d(axes)
    for index, (ax, ids) in enumerate(zip(axes, levels)):
        rgb = _codes_to_rgb(ids_to_codes(ids.cpu(), codebook_bits))
        f = min(frame, rgb.shape[0] - 1)
        ax.imshow(rgb[f], interpolation="nearest")
        ax.set_title(f"level {index + 1}: {ids.shape[1]}x{ids.shape[2]} tokens")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"token pyramid (latent frame {frame}, colours = PCA of {codebook_bits}-bit codes)")
    fig.tight_layout()
    return _save(fig, path)


def plot_side_by_side(original: torch.Tensor, reconstruction: torch.Tensor, path: str, num_frames: int = 4) -> str:
    """Rows: input / reconstruction; columns: evenly spaced frames. Videos ``[3, T, H, W]`` in [-1, 1]."""
    a, b = to_uint8_frames(original), to_uint8_frames(reconstruction)
    picks = np.linspace(0, a.shape[0] - 1, num=min(num_frames, a.shape[0])).round().astype(int)
    fig, axes = plt.subplots(2, len(picks), figsize=(2.6 * len(picks), 2.6 * 2 * a.shape[1] / max(a.shape[2], 1) + 0.6))
    axes = np.array(axes).reshape(2, len(picks))
    for col, f in enumerate(picks):
        for row, (frames, label) in enumerate(((a, "input"), (b, "reconstruction"))):
            ax = axes[row, col]
            ax.imshow(frames[f])
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(label)
            if row == 0:
                ax.set_title(f"frame {f}")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str) -> str:
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
    return str(path)
