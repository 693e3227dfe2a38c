"""Looking at a re-ID world: sample images per camera, to see camera styles and how people look."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from ..data.records import ReidDataset
from .common import save_figure


def plot_camera_samples(
    dataset: ReidDataset, path: str | os.PathLike | None = None, n_per_camera: int = 6, seed: int = 0
) -> Figure:
    """One row per camera with n_per_camera random person images (all splits, no distractors), titled by pid.

    Camera styles should differ at a glance; the same pid in two rows shows what a model has to match.
    """
    records = [r for r in dataset.train + dataset.query + dataset.gallery if r.pid > 0]
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(0.9 * n_per_camera + 0.6, 1.75 * dataset.num_cameras), layout="constrained")
    axes = fig.subplots(dataset.num_cameras, n_per_camera, squeeze=False)
    for camid, row in enumerate(axes):
        in_camera = [r for r in records if r.camid == camid]
        chosen = rng.choice(len(in_camera), size=min(n_per_camera, len(in_camera)), replace=False)
        for column, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if column < len(chosen):
                record = in_camera[chosen[column]]
                with Image.open(record.path) as image:
                    ax.imshow(np.asarray(image.convert("RGB")))
                ax.set_title(f"id {record.pid}", fontsize=7, pad=2)
        row[0].set_ylabel(f"camera {camid + 1}\n({len(in_camera)} imgs)", fontsize=8)
    fig.suptitle(f"{dataset.name}: sample images per camera", fontsize=10)
    save_figure(fig, path)
    return fig
