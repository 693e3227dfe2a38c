"""One number per model that the eye can read: how many of an image's nearest neighbours come from its own camera.

Features organised by camera put most of an image's neighbours in its own camera, far above chance; features
organised by person bring that share down towards chance, since a person is seen by several cameras.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .common import CATEGORY_COLOURS, save_figure


def plot_same_camera_neighbours(table: pd.DataFrame, k: int, path=None, title: str = "") -> Figure:
    """Bars: per model (the table's rows, in order), the share of the k nearest neighbours from the image's own
    camera (`same_camera`), each labelled with its percentage; a dashed line: chance (`chance`, the same for every
    model of the same images). The table is `canu_core.cluster.same_camera_neighbours`'s."""
    chance = table["chance"].to_numpy()
    if not np.allclose(chance, chance[0]):
        raise ValueError("the models' chance levels differ: their features are not of the same images")
    fig = Figure(figsize=(1.3 * len(table) + 2.5, 3.8), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(table))
    bars = ax.bar(positions, table["same_camera"], color=CATEGORY_COLOURS[1], width=0.6)
    ax.bar_label(bars, labels=[f"{share:.0%}" for share in table["same_camera"]], padding=2)
    ax.axhline(chance[0], color="black", linestyle="--", linewidth=1, label=f"chance ({chance[0]:.0%})")
    ax.legend(loc="upper right", frameon=False)
    ax.set_xticks(positions, table.index.tolist())
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    ax.set_ylabel(f"of each image's {k} nearest neighbours:\nshare from its own camera")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, fontsize=10)
    save_figure(fig, path)
    return fig
