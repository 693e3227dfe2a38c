"""What a pretraining recipe changes downstream: the first clusterings of the target by the models of two notebook-01
runs, side by side (notebook 02's compare_pretrain_run), e.g. with and without MMT's target forward.

The first clustering is the one the adaptation starts from: the source model's eval-mode features of the target
training images, clustered with a fresh clustering (DBSCAN's eps by the rho rule on that model's own distances).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .common import save_figure

# The column of `compare_first_clusterings` holding what each quantity is measured against. It is no valid run
# name (those have no space), so it never collides with a run's column.
REFERENCE = "reference (true ids / chance)"


def compare_first_clusterings(reports: Mapping[str, Mapping]) -> pd.DataFrame:
    """One column per run (name -> report of `first_clustering_report`'s form, in the given order), one row per
    quantity, and the reference column: what a clustering that followed the true ids exactly would score (their
    number, no outlier, 1 for the agreement scores, the true ids' own MI with the camera) and the camera probe's
    chance. The chance-adjusted MI row appears when every report has it."""
    if not reports:
        raise ValueError("no report to compare")
    first = next(iter(reports.values()))
    rows = [
        ("clusters", lambda r: r["num_clusters"], first["num_true_ids"]),
        ("outliers", lambda r: r["num_outliers"], 0),
        ("pairwise precision", lambda r: r["pairwise_precision"], 1.0),
        ("pairwise recall", lambda r: r["pairwise_recall"], 1.0),
        ("NMI", lambda r: r["nmi"], 1.0),
        ("MI(pseudo-labels; camera), nats", lambda r: r["mi_pseudo_camera"], first["mi_true_camera"]),
    ]
    if all("ami_pseudo_camera" in report for report in reports.values()):
        rows.append(("MI less its chance value, nats", lambda r: r["ami_pseudo_camera"], first["ami_true_camera"]))
    rows.append(
        (
            "camera probe accuracy",
            lambda r: r["features"]["camera_probe"]["accuracy"],
            first["features"]["camera_probe"]["chance"],
        )
    )
    columns = {name: [value(report) for _, value, _ in rows] for name, report in reports.items()}
    columns[REFERENCE] = [reference for _, _, reference in rows]
    table = pd.DataFrame(columns, index=[label for label, _, _ in rows], dtype=float)
    table.index.name = "first clustering"
    return table


def plot_first_clusterings(table: pd.DataFrame, path=None, title: str = "") -> Figure:
    """One panel per quantity of `compare_first_clusterings`: a bar per run, the reference as a dashed line."""
    runs = [column for column in table.columns if column != REFERENCE]
    columns = 4
    rows = -(-len(table) // columns)
    fig = Figure(figsize=(3.4 * columns, 2.9 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    colours = [f"C{i}" for i in range(len(runs))]
    for ax, (quantity, values) in zip(axes, table.iterrows()):
        heights = values[runs].to_numpy(dtype=float)
        bars = ax.bar(range(len(runs)), np.nan_to_num(heights), color=colours)
        ax.bar_label(bars, labels=["n/a" if np.isnan(h) else f"{h:.3g}" for h in heights], fontsize=8)
        reference = ax.axhline(values[REFERENCE], color="black", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(runs)), runs, rotation=15, fontsize=8)
        ax.set_title(quantity, fontsize=9)
        ax.margins(y=0.2)
    for ax in axes[len(table) :]:
        ax.set_visible(False)
    fig.legend([reference], [REFERENCE], loc="outside lower center", fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path)
    return fig
