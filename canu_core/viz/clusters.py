"""Views of one clustering of the target set: per-group tables, the diagnostics table, the camera composition of the
clusters and sample images of chosen clusters (notebook 02 and its widgets).

The question they answer is the paper's (section IV): do the clusters follow identities, or cameras? A cluster
whose images all come from one camera, when almost no true identity is seen by a single camera, is camera-biased.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from ..cluster.diagnostics import group_table
from ..data.records import ImageRecord
from .common import category_colours, save_figure

# The smallest difference of adjusted MI that counts as a camera bias: the claims tables' margin for adjusted MI.
SMALLEST_MI_DIFFERENCE = 0.02


def camera_bias_narrative(report: Mapping, features: Mapping, min_samples: int) -> str:
    """Notebook 02's reading of one clustering, in its own numbers: what the features carry (`feature_report`),
    how the clusters (`clustering_report`) formed, and whether they follow cameras more than people do."""
    probe = features["camera_probe"]
    by_camera, by_identity = features["neighbours_camera"], features["neighbours_identity"]
    lines = [
        f"What the features carry: a linear probe predicts the camera for {probe['accuracy']:.0%} of the images "
        f"(chance {probe['chance']:.0%}); an image's 10 nearest neighbours share its camera "
        f"{by_camera['same_label_rate']:.0%} of the time (chance {by_camera['chance_rate']:.0%}) and its "
        f"identity {by_identity['same_label_rate']:.0%} of the time (chance {by_identity['chance_rate']:.1%})."
    ]
    r = report
    if r["status"] != "ok":
        lines.append(
            f"This clustering is degenerate ({r['message']}): there are not enough clusters to read a "
            f"camera bias from. DBSCAN needs {min_samples} images within eps of one another; on a small "
            "world the rho rule's eps (the mean of the few smallest distances) can be too small for that."
        )
        return "\n".join(lines)
    how = (
        f"DBSCAN chains images closer than eps = {r['eps']:.3f}"
        if r["eps"] is not None
        else f"k-means gives each image its nearest of {r['num_clusters']} centres"
    )
    lines.append(
        f"{how}, so a cluster gathers whatever near images share. {r['single_camera_clusters']:.0%} of the "
        f"{r['num_clusters']} clusters hold images of a single camera, while {r['single_camera_ids']:.0%} "
        f"of the {r['num_true_ids']} true identities were seen by a single camera. "
        f"{r['pairwise_recall']:.0%} of the same-person pairs share a cluster (the others are split between "
        f"clusters, or lost with the {r['outlier_fraction']:.0%} of the images left as outliers: "
        f"{r['lost_ids']} of the {r['num_true_ids']} identities lost every image), and "
        f"{r['pairwise_precision']:.0%} of the pairs inside a cluster show one person."
    )
    mutual_information = (
        f"chance-adjusted MI(pseudo-labels; camera) = {r['ami_pseudo_camera']:.2f} nats against "
        f"{r['ami_true_camera']:.2f} for the true ids (plug-in: {r['mi_pseudo_camera']:.2f} against "
        f"{r['mi_true_camera']:.2f}; the plug-in value grows with the number of labels, so only the adjusted one "
        "compares clusterings of different sizes)"
    )
    if r["ami_pseudo_camera"] - r["ami_true_camera"] > SMALLEST_MI_DIFFERENCE:
        lines.append(
            f"The clusters follow cameras more than people do: {mutual_information}. Trained on such "
            "labels, a network learns that 'same camera' means 'same person': the bias CANU's camera "
            "adversary removes, conditioned on the cluster centroid so that what identity and camera "
            "genuinely share is kept."
        )
    else:
        lines.append(
            f"These clusters follow cameras no more than people do (by more than {SMALLEST_MI_DIFFERENCE} nats): "
            f"{mutual_information}. This clustering shows no camera bias to remove."
        )
    return "\n".join(lines)


def diagnostics_table(clustering: Mapping, features: Mapping | None = None) -> pd.DataFrame:
    """A readable table of `clustering_report` (and `feature_report`): each quantity beside its reference."""
    c = clustering
    rows = {
        "clusters": (f"{c['num_clusters']} ({c['status']})", f"{c['num_true_ids']} true ids"),
        "outliers": (f"{c['num_outliers']} of {c['num_points']} ({c['outlier_fraction']:.0%})", ""),
        "lost ids (no image left)": (f"{c['lost_ids']} of {c['num_true_ids']}", "0"),
        "NMI / ARI": (f"{c['nmi']:.3f} / {c['ari']:.3f}", "1 / 1"),
        "pairwise precision / recall": (f"{c['pairwise_precision']:.3f} / {c['pairwise_recall']:.3f}", "1 / 1"),
        "MI(labels; camera), nats": (f"{c['mi_pseudo_camera']:.3f}", f"{c['mi_true_camera']:.3f} (true ids)"),
        "MI less its chance value, nats": (f"{c['ami_pseudo_camera']:.3f}", f"{c['ami_true_camera']:.3f} (true ids)"),
        "groups from a single camera": (
            f"{c['single_camera_clusters']:.0%} of clusters",
            f"{c['single_camera_ids']:.0%} of true ids",
        ),
    }
    if features is not None:
        probe, cam, ids = features["camera_probe"], features["neighbours_camera"], features["neighbours_identity"]
        rows.update(
            {
                "camera probe accuracy": (
                    f"{probe['accuracy']:.1%} ± {probe['accuracy_std']:.1%}",
                    f"{probe['chance']:.1%} (chance)",
                ),
                "neighbours sharing the camera": (
                    f"{cam['same_label_rate']:.1%}",
                    f"{cam['chance_rate']:.1%} (chance)",
                ),
                "neighbours sharing the identity": (
                    f"{ids['same_label_rate']:.1%}",
                    f"{ids['chance_rate']:.1%} (chance)",
                ),
            }
        )
    return pd.DataFrame.from_dict(rows, orient="index", columns=["this clustering", "reference"])


def pick_clusters(table: pd.DataFrame, n: int = 3) -> dict[str, list[int]]:
    """The n most camera-pure clusters (largest first among equals) and the n spanning the most cameras."""
    pure = table.sort_values(["camera_purity", "size"], ascending=False, kind="stable")
    mixed = table.sort_values(["cameras", "size"], ascending=False, kind="stable")
    return {"camera-pure": pure.index[:n].tolist(), "mixed": mixed.index[:n].tolist()}


def plot_camera_composition(
    labels, camids, pids, num_cameras: int, path=None, max_clusters: int = 40, title: str = ""
) -> Figure:
    """Left: the largest clusters as bars stacked by camera. Right: the share of clusters, and of true ids,
    spanning 1, 2, ... cameras. Clusters piling up at one camera while true ids span several is camera bias."""
    labels, camids = np.asarray(labels), np.asarray(camids)
    fig = Figure(figsize=(15, 4.5), layout="constrained")
    bars, spread = fig.subplots(1, 2, width_ratios=[2.2, 1])
    palette = category_colours(num_cameras)
    largest = group_table(labels, camids, pids).index[:max_clusters]
    counts = pd.crosstab(labels[labels >= 0], camids[labels >= 0]).reindex(
        index=largest, columns=range(num_cameras), fill_value=0
    )
    bottom = np.zeros(len(counts))
    positions = np.arange(len(counts))
    for camid in range(num_cameras):
        bars.bar(positions, counts[camid], bottom=bottom, color=palette[camid], width=0.85, label=f"{camid + 1}")
        bottom += counts[camid].to_numpy()
    bars.set_xticks(positions, [str(c) for c in counts.index], rotation=90, fontsize=7)
    bars.set_xlabel("cluster (largest first)")
    bars.set_ylabel("images")
    bars.set_title(f"camera composition of the {len(counts)} largest clusters")
    bars.legend(title="camera", fontsize=7, ncols=2)
    _plot_camera_spread(spread, labels, camids, pids, num_cameras)
    fig.suptitle(title)
    save_figure(fig, path)
    return fig


def _plot_camera_spread(ax, labels: np.ndarray, camids: np.ndarray, pids, num_cameras: int) -> None:
    cameras = np.arange(1, num_cameras + 1)
    width = 0.4
    for offset, (name, groups) in zip((-width / 2, width / 2), (("clusters", labels), ("true ids", pids))):
        spans = group_table(groups, camids, pids)["cameras"]
        shares = spans.value_counts(normalize=True).reindex(cameras, fill_value=0.0)
        ax.bar(cameras + offset, shares, width=width, label=f"{name} ({len(spans)})")
    ax.set_xticks(cameras)
    ax.set_xlabel("number of cameras in the group")
    ax.set_ylabel("share of groups")
    ax.set_title("cameras per cluster vs. per true id")
    ax.legend(fontsize=8)


def plot_cluster_samples(
    records: Sequence[ImageRecord],
    labels,
    clusters: Sequence[int],
    path=None,
    n_images: int = 8,
    seed: int = 0,
    title: str = "",
) -> Figure:
    """One row per cluster: up to n_images random images of it, ordered by camera, each titled with its true id
    and framed in its camera's colour (the UMAP's camera palette). Row labels: size, cameras and true ids."""
    labels = np.asarray(labels)
    fig = Figure(figsize=(0.9 * n_images + 1.4, 1.8 * max(len(clusters), 1) + 0.4), layout="constrained")
    fig.suptitle(title, fontsize=10)
    if not len(clusters):  # drawn in an axes: IPython shows a figure without axes as its text repr, not a picture
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no cluster to show", ha="center", va="center", transform=ax.transAxes)
        save_figure(fig, path)
        return fig
    palette = category_colours(max(r.camid for r in records) + 1)
    rng = np.random.default_rng(seed)
    axes = fig.subplots(len(clusters), n_images, squeeze=False)
    for cluster, row in zip(clusters, axes):
        members = np.flatnonzero(labels == cluster)
        chosen = rng.choice(members, size=min(n_images, len(members)), replace=False)
        chosen = sorted(chosen, key=lambda i: (records[i].camid, records[i].pid))
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        for ax, index in zip(row, chosen):
            record = records[index]
            with Image.open(record.path) as image:
                ax.imshow(np.asarray(image.convert("RGB")))
            ax.set_title(f"id {record.pid}\ncam {record.camid + 1}", fontsize=7, pad=2)
            for spine in ax.spines.values():
                spine.set(visible=True, color=palette[record.camid], linewidth=3)
        in_cluster = [records[i] for i in members]
        row[0].set_ylabel(
            f"cluster {cluster}\n{len(members)} imgs\n{len({r.camid for r in in_cluster})} cams, "
            f"{len({r.pid for r in in_cluster})} ids",
            fontsize=8,
        )
    save_figure(fig, path)
    return fig
