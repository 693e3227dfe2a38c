"""Figures of a multi-run study (sweeps over the adversary, mu or a world knob, several seeds each).

Per-epoch MI(pseudo-labels; camera) (paper Fig. 3) and lost identities (Fig. 4), one line per adversary, and a
final metric against a swept knob (the ablations). Every point is the mean over seeds; the spread is +- one sample
standard deviation (pandas' ddof=1), taken as 0 for a single seed.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..config import ADVERSARIES, ADVERSARY_NAMES, METHODS
from .common import save_figure

AXIS_LABELS = {
    "mu": "mu",
    "target_coverage": "target camera coverage",
    "target_area_fashion": "target area fashion (lambda)",
    "target_mAP": "target mAP (%)",
    "target_R1": "target R1 (%)",
    "disc_acc": "discriminators' camera accuracy",
    "camera_probe_accuracy": "linear camera probe accuracy",
}


def _require(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    """Fail early with what is missing rather than deep inside pandas or matplotlib."""
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} needs columns {missing}; found {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{name} is empty: expected at least one row with columns {list(dict.fromkeys(columns))}")


def _one_run_per_seed(frame: pd.DataFrame, keys: list[str], name: str) -> None:
    """Refuse to pool runs that differ in something other than the seed, or the pair of source models and its seed
    where the frame has pairs (e.g. several mu in one line)."""
    keys = list(dict.fromkeys(keys + (["pretrain_seed"] if "pretrain_seed" in frame else [])))
    duplicated = frame.duplicated(keys)
    if duplicated.any():
        first = frame.loc[duplicated, keys].iloc[0].to_dict()
        raise ValueError(
            f"{name} has several rows for {first}: expected one per seed; filter the study to one "
            "configuration per line first"
        )


def _ordered(values, order: Sequence[str]) -> list:
    """The values present: those in `order` first, in that order, then the others sorted."""
    present = list(pd.unique(values))
    return [v for v in order if v in present] + sorted(v for v in present if v not in order)


def _hue_label(hue: str, value) -> str:
    return ADVERSARY_NAMES.get(value, str(value)) if hue == "adversary" else str(value)


def _seed_stats(frame: pd.DataFrame, by: str, column: str) -> pd.DataFrame:
    """Per value of `by`: mean of `column` over seeds, std (ddof=1; 0 for a single seed, not NaN) and count."""
    stats = frame.groupby(by)[column].agg(["mean", "std", "count"])
    stats["std"] = stats["std"].where(stats["count"] > 1, 0.0)
    return stats


def _panels(frame: pd.DataFrame) -> tuple[Figure, list[tuple[str, object]]]:
    """A figure with one panel per method present, paired with the method it shows."""
    methods = _ordered(frame["method"], METHODS)
    fig = Figure(figsize=(5 * len(methods), 3.8), layout="constrained")
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    for method, ax in zip(methods, axes):
        ax.set_title(str(method).upper())
        ax.grid(alpha=0.3)
    return fig, list(zip(methods, axes))


def _finish(fig: Figure, path, title: str) -> Figure:
    for ax in fig.axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, path)
    return fig


def _per_epoch(
    histories: pd.DataFrame,
    column: str,
    ylabel: str,
    path,
    title: str,
    true_column: str | None = None,
    true_label: str = "true ids",
) -> Figure:
    """Mean of `column` per epoch over runs (seeds, and pairs where there are several), one line per adversary with
    a +- std band when several runs, and (if `true_column`) its per-epoch mean as a black dashed reference labelled
    `true_label`."""
    _require(
        histories,
        ["method", "adversary", "seed", "epoch", column] + ([true_column] if true_column else []),
        "histories",
    )
    _one_run_per_seed(histories, ["method", "adversary", "seed", "epoch"], "histories")
    adversaries = _ordered(histories["adversary"], ADVERSARIES)
    fig, panels = _panels(histories)
    for method, ax in panels:
        part = histories[histories["method"] == method]
        for index, adversary in enumerate(adversaries):
            runs = part[part["adversary"] == adversary]
            if runs.empty:
                continue
            stats = _seed_stats(runs, "epoch", column)
            epochs, colour = stats.index + 1, f"C{index}"
            ax.plot(
                epochs, stats["mean"], marker="o", markersize=3, color=colour, label=_hue_label("adversary", adversary)
            )
            if stats["count"].max() > 1:
                ax.fill_between(
                    epochs,
                    stats["mean"] - stats["std"],
                    stats["mean"] + stats["std"],
                    color=colour,
                    alpha=0.2,
                    linewidth=0,
                )
        if true_column:
            true = part.groupby("epoch")[true_column].mean()
            ax.plot(true.index + 1, true, linestyle="--", color="black", label=true_label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
    return _finish(fig, path, title)


def plot_mi_per_epoch(histories: pd.DataFrame, path=None, title: str = "", adjusted: bool = False) -> Figure:
    """Paper Fig. 3: whether the adversary lowers the camera information in the pseudo-labels towards that of the
    true ids. adjusted: the MI less its chance value (ami_* columns), which does not move with the number of
    clusters as the plug-in MI does."""
    if adjusted:
        return _per_epoch(
            histories,
            "ami_pseudo_camera",
            "adjusted MI(pseudo-labels; camera) (nats)",
            path,
            title,
            true_column="ami_true_camera",
        )
    return _per_epoch(
        histories, "mi_pseudo_camera", "MI(pseudo-labels; camera) (nats)", path, title, true_column="mi_true_camera"
    )


def plot_lost_ids_per_epoch(histories: pd.DataFrame, path=None, title: str = "") -> Figure:
    """Paper Fig. 4: whether the adversary keeps identities from being dropped as outliers."""
    return _per_epoch(histories, "lost_ids", "lost identities", path, title)


# A per-epoch column's reference level, drawn dashed beside it: the camera probe against what the true identity
# alone tells of the camera (a probe can reach it without any camera style in the features).
REFERENCE_LEVELS = {"camera_probe_accuracy": ("camera_identity_alone", "from the true identity alone")}


def plot_metric_per_epoch(histories: pd.DataFrame, column: str, path=None, title: str = "") -> Figure:
    """Any per-epoch column (target mAP, the discriminators' accuracy, the camera probe...), one line per
    adversary, mean +- std over seeds, with its reference level dashed where it has one (REFERENCE_LEVELS) and the
    histories hold it; epochs without a value (not evaluated) are left out."""
    _require(histories, [column], "histories")
    reference, label = REFERENCE_LEVELS.get(column, (None, ""))
    if reference is not None and (reference not in histories or histories[reference].isna().all()):
        reference = None  # runs recorded before the level was
    return _per_epoch(
        histories.dropna(subset=[column]),
        column,
        AXIS_LABELS.get(column, column),
        path,
        title,
        true_column=reference,
        true_label=label,
    )


def plot_metric_against(
    results: pd.DataFrame,
    x: str,
    metric: str = "target_mAP",
    hue: str = "adversary",
    path=None,
    title: str = "",
    log_x: bool = False,
    baselines: pd.DataFrame | None = None,
) -> Figure:
    """The final `metric` against the swept knob `x`, one line per `hue` value, mean +- std over seeds (error
    bars). `baselines` (runs without adversary) adds, per method, their mean as a grey dashed line with a +- std
    band, the level a sweep has to beat. `log_x` for knobs spanning decades, such as mu."""
    _require(results, ["method", "seed", x, hue, metric], "results")
    _one_run_per_seed(results, ["method", hue, x, "seed"], "results")
    if log_x and (results[x] <= 0).any():
        raise ValueError(f"log_x needs positive {x} values; found {sorted(results.loc[results[x] <= 0, x])}")
    if baselines is not None:
        _require(baselines, ["method", "seed", metric], "baselines")
        _one_run_per_seed(baselines, ["method", "seed"], "baselines")
    baseline_stats = _seed_stats(baselines, "method", metric) if baselines is not None else pd.DataFrame()
    hues = _ordered(results[hue], ADVERSARIES if hue == "adversary" else [])
    fig, panels = _panels(results)
    for method, ax in panels:
        part = results[results["method"] == method]
        for index, value in enumerate(hues):
            runs = part[part[hue] == value]
            if runs.empty:
                continue
            stats = _seed_stats(runs, x, metric)
            ax.errorbar(
                stats.index,
                stats["mean"],
                yerr=stats["std"],
                marker="o",
                markersize=4,
                capsize=3,
                color=f"C{index}",
                label=_hue_label(hue, value),
            )
        if method in baseline_stats.index:
            mean, std, count = baseline_stats.loc[method, ["mean", "std", "count"]]
            ax.axhline(mean, color="grey", linestyle="--", label="baseline (no adversary)")
            if count > 1:
                ax.axhspan(mean - std, mean + std, color="grey", alpha=0.15, linewidth=0)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(AXIS_LABELS.get(x, x))
        ax.set_ylabel(AXIS_LABELS.get(metric, metric))
    return _finish(fig, path, title)


def plot_differences_against(differences: pd.DataFrame, x: str, path=None, title: str = "") -> Figure:
    """Paired differences against a swept knob `x`: per `comparison`, the mean and its 95% t interval (error bars,
    over the units each row names: pairs of source models, or seeds of one pair), beside the zero line and the
    1-mAP margin that matters."""
    _require(differences, [x, "comparison", "mean", "ci_low", "ci_high", "unit"], "differences")
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    comparisons = list(pd.unique(differences["comparison"]))
    step = 0.015 * (float(differences[x].max() - differences[x].min()) or 1.0)  # side by side, not on top
    for index, comparison in enumerate(comparisons):
        part = differences[differences["comparison"] == comparison].sort_values(x)
        offset = (index - (len(comparisons) - 1) / 2) * step
        ax.errorbar(
            part[x] + offset,
            part["mean"],
            yerr=[part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]],
            marker="o",
            markersize=4,
            capsize=3,
            color=f"C{index}",
            label=f"{comparison} ({part['unit'].iloc[0]})",
        )
    ax.axhline(0, color="grey", linewidth=1)
    for level in (-1, 1):
        ax.axhline(level, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel("difference in target mAP (95% CI)")
    return _finish(fig, path, title)


VERDICT_COLOURS = {
    "supported": "tab:green",
    "not supported": "tab:red",
    "inconclusive": "tab:grey",
    "too few units": "tab:olive",
}


def plot_claims(claims: pd.DataFrame, path=None, title: str = "") -> Figure:
    """The claims table (study.claims_table) as a forest plot: per claim, the mean paired difference and its 95%
    t interval, coloured by verdict, one panel per unit (mAP, nats); the arrow at each label points the
    way the paper's claim goes."""
    _require(claims, ["comparison", "metric", "direction", "mean", "ci_low", "ci_high", "verdict"], "claims")
    metrics = list(pd.unique(claims["metric"]))
    heights = [max(1.5, 0.4 * (claims["metric"] == m).sum() + 0.8) for m in metrics]
    fig = Figure(figsize=(10, sum(heights)), layout="constrained")
    axes = fig.subplots(len(metrics), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for metric, ax in zip(metrics, axes):
        part = claims[claims["metric"] == metric].reset_index(drop=True)
        positions = range(len(part))[::-1]
        for y, row in zip(positions, part.itertuples()):
            colour = VERDICT_COLOURS.get(row.verdict, "black")
            ax.plot([row.ci_low, row.ci_high], [y, y], color=colour, linewidth=2)
            ax.plot(row.mean, y, "o", color=colour)
        ax.set_yticks(
            list(positions),
            [f"{c} ({'>' if d > 0 else '<'} 0)" for c, d in zip(part["comparison"], part["direction"])],
            fontsize=7,
        )
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel(f"paired difference, {metric}")
        ax.grid(axis="x", alpha=0.3)
    for verdict, colour in VERDICT_COLOURS.items():
        axes[0].plot([], [], "o-", color=colour, label=verdict)
    return _finish(fig, path, title)
