"""Learning curves from a run's history.csv."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .common import save_figure


def plot_history(
    history: pd.DataFrame, panels: dict[str, list[str]], group: str | None = None, path=None, title: str = ""
):
    """One panel per entry of `panels` (title -> history columns), x = epoch (1-based), one line per column and,
    when `group` names a column (e.g. "model"), per value of it."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    groups = history.groupby(group) if group else [(None, history)]
    for ax, (panel, columns) in zip(axes[0], panels.items()):
        for key, part in groups:
            for column in columns:
                label = column if key is None else f"{column} ({group} {key})"
                ax.plot(part["epoch"] + 1, part[column], marker="o", markersize=3, label=label)
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    return fig
