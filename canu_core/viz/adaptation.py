"""Per-epoch figures of an adaptation run (MMT or SSG, plain or with a camera adversary), from its history.csv.

Six panels: the training losses, the camera accuracy of the discriminators and of a fresh linear probe (beside
what the true identity alone allows, and chance), MI(pseudo-labels; camera)
with the true ids' MI dashed (paper Fig. 3), lost identities (Fig. 4), clusters and outliers, and target mAP / R1.
Columns a run does not have (no adversary: NaN discriminator columns; a skipped epoch: no losses) are left out.
"""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from .common import save_figure

# Loss columns by method: each network's (MMT) or each part's (SSG) own terms, and the adversarial ones.
LOSS_COLUMNS = {
    "mmt": ["loss", "loss_ce1", "loss_tri1", "loss_soft_ce", "loss_soft_tri", "loss_adv1"],
    "ssg": ["loss", "loss_tri_full", "loss_tri_upper", "loss_tri_lower", "loss_adv_full"],
}


def _columns(history: pd.DataFrame, names: list[str]) -> list[str]:
    """The names that are history columns with at least one finite value."""
    return [n for n in names if n in history and pd.to_numeric(history[n], errors="coerce").notna().any()]


def discriminator_columns(history: pd.DataFrame) -> list[str]:
    return _columns(history, sorted(c for c in history.columns if c.startswith("disc_acc")))


def _plot(ax, history: pd.DataFrame, column: str, **style) -> None:
    ax.plot(
        history["epoch"] + 1,
        pd.to_numeric(history[column], errors="coerce"),
        marker="o",
        markersize=3,
        label=style.pop("label", column),
        **style,
    )


def plot_adaptation(history: pd.DataFrame, num_cameras: int | None = None, path=None, title: str = "") -> Figure:
    """The six per-epoch panels of one adaptation run; x = epoch (1-based). `num_cameras` draws the chance level of
    the discriminators' camera accuracy."""
    history = history.sort_values("epoch")
    method = str(history["method"].iloc[0]) if "method" in history and len(history) else "mmt"
    fig = Figure(figsize=(15, 7.5), layout="constrained")
    axes = fig.subplots(2, 3).ravel()

    ax = axes[0]
    for column in _columns(history, LOSS_COLUMNS.get(method, ["loss"])):
        _plot(ax, history, column)
    ax.set_title("training losses (epoch means)")

    ax = axes[1]  # what the adversary is judged by: a fresh probe, not the discriminator it plays against
    for column in discriminator_columns(history):
        _plot(ax, history, column)
    if _columns(history, ["camera_probe_accuracy"]):
        _plot(ax, history, "camera_probe_accuracy", color="black", label="fresh linear probe")
    if _columns(history, ["camera_identity_alone"]):
        _plot(ax, history, "camera_identity_alone", color="black", linestyle="--", label="true identity alone")
    if num_cameras:
        ax.axhline(1 / num_cameras, color="grey", linestyle=":", label=f"chance (1/{num_cameras})")
    if not discriminator_columns(history):
        ax.text(0.5, 0.9, "no camera adversary", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("camera accuracy: discriminators and a probe")

    ax = axes[2]
    if "mi_pseudo_camera" in history:
        _plot(ax, history, "mi_pseudo_camera", label="MI(pseudo-labels; camera)")
    if "mi_true_camera" in history:
        _plot(ax, history, "mi_true_camera", linestyle="--", color="black", label="MI(true ids; camera)")
    if "ami_pseudo_camera" in history:
        _plot(ax, history, "ami_pseudo_camera", color="tab:red", label="adjusted MI(pseudo-labels; camera)")
    if "ami_true_camera" in history:
        _plot(ax, history, "ami_true_camera", linestyle="--", color="grey", label="adjusted MI(true ids; camera)")
    ax.set_title("MI with the camera (nats)")

    ax = axes[3]
    if "lost_ids" in history:
        _plot(ax, history, "lost_ids", label="lost ids")
    ax.set_title("identities lost to outliers")

    ax = axes[4]
    for column in _columns(history, ["num_clusters", "num_outliers"]):
        _plot(ax, history, column)
    ax.set_title("clusters and outliers")

    ax = axes[5]
    for column in _columns(history, ["target_mAP", "target_R1"]):
        _plot(ax, history, column)
    if not _columns(history, ["target_mAP", "target_R1"]):
        ax.text(
            0.5,
            0.5,
            "not evaluated\n(no epoch trained)" if not (history.get("status") == "trained").any() else "not evaluated",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.set_title("target test (%)")

    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, path)
    return fig


def final_metrics_table(last: dict, best_by_target_labels: dict | None) -> pd.DataFrame:
    """Rows "last" and "best by target labels (reference only)": epoch, target mAP and R1 and the
    clustering diagnostics of that epoch (None/NaN where an epoch was skipped)."""
    columns = [
        "epoch",
        "target_mAP",
        "target_R1",
        "num_clusters",
        "num_outliers",
        "lost_ids",
        "mi_pseudo_camera",
        "mi_true_camera",
        "ami_pseudo_camera",
        "ami_true_camera",
    ]
    rows = {"last": last}
    if best_by_target_labels is not None:
        rows["best by target labels (reference only)"] = best_by_target_labels
    table = pd.DataFrame({name: {c: row.get(c, math.nan) for c in columns} for name, row in rows.items()}).T
    table["epoch"] = pd.to_numeric(table["epoch"]) + 1  # 1-based, as in the figures
    return table
