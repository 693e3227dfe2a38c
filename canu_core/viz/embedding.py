"""UMAP views of a feature set: the same 2-D points coloured by camera and by identity, side by side.

If features group by camera rather than by identity, the left panel shows tidy blobs and the right one a mix:
that is the camera bias the adversary is meant to remove.
"""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
import seaborn as sns

from .common import save_figure


def umap_embedding(features: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP of L2-normalised features, cosine metric; reproducible for a given seed (single-threaded)."""
    import umap  # imported here: it pays numba compilation (~10 s) on first use

    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine", random_state=seed)
    return reducer.fit_transform(np.asarray(features, dtype=np.float32))


def _scatter(ax, points: np.ndarray, labels: np.ndarray, title: str, legend: bool) -> None:
    names = np.array([str(v) for v in labels])  # categories, not a colour scale
    order = sorted(set(names), key=lambda s: (len(s), s))
    palette = sns.color_palette("husl", len(order))
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=names, hue_order=order, palette=palette, s=8,
                    linewidth=0, ax=ax, legend=legend)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if legend:
        ax.legend(title="camera", markerscale=2, fontsize=7, loc="best")


def plot_umap_camera_identity(points: np.ndarray, camids: np.ndarray, pids: np.ndarray, title: str = "",
                              path=None, max_ids: int = 30, seed: int = 0):
    """Left: all points by camera. Right: the points of `max_ids` random identities by identity (others grey)."""
    camids, pids = np.asarray(camids), np.asarray(pids)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5))
    _scatter(left, points, camids + 1, "coloured by camera", legend=True)
    chosen = np.random.default_rng(seed).choice(np.unique(pids), size=min(max_ids, len(np.unique(pids))),
                                                replace=False)
    shown = np.isin(pids, chosen)
    right.scatter(points[~shown, 0], points[~shown, 1], s=4, c="lightgrey", linewidths=0)
    _scatter(right, points[shown], pids[shown], f"coloured by identity ({len(chosen)} random ids; others grey)",
             legend=False)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    return fig
