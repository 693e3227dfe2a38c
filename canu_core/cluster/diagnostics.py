"""Diagnostics of a feature set or a clustering: what the features group by, and how labels relate to cameras."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, mutual_info_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix, expected_mutual_information
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

if TYPE_CHECKING:
    from .pseudo_labels import PseudoLabels


def _nearest_neighbours(features: np.ndarray | torch.Tensor, k: int, chunk: int = 4096) -> np.ndarray:
    """Indices of each point's k nearest neighbours by cosine similarity, the point itself excluded."""
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(features), dtype=torch.float32), dim=1)
    out = []
    for start in range(0, len(x), chunk):
        sims = x[start : start + chunk] @ x.t()
        sims[torch.arange(len(sims)), torch.arange(start, start + len(sims))] = float("-inf")
        out.append(sims.topk(k, dim=1).indices)
    return torch.cat(out).numpy()


def neighbour_agreement(features, labels, k: int = 10) -> dict[str, float]:
    """How much each point's k nearest neighbours share its label, for camera or identity labels: which of the two
    the features group by.

    same_label_rate: share of the k neighbours with the point's label. chance_rate: the share expected if
    neighbours were drawn at random (probability that another point shares the label); lift = their ratio.
    attainable_rate: the best possible share, min(k, points with that label - 1) / k, averaged (an identity with 8
    images can fill at most 7 of 10 neighbours); attained = same_label_rate / attainable_rate.
    """
    labels = np.asarray(labels)
    neighbours = _nearest_neighbours(features, k)
    observed = float((labels[neighbours] == labels[:, None]).mean())
    values, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    chance = float((counts * (counts - 1)).sum() / (len(labels) * (len(labels) - 1)))
    attainable = float((np.minimum(k, counts[inverse] - 1) / k).mean())
    return {
        "same_label_rate": observed,
        "chance_rate": chance,
        "lift": observed / chance,
        "attainable_rate": attainable,
        "attained": observed / attainable,
    }


def same_camera_neighbours(
    features_by_model: Mapping[str, np.ndarray | torch.Tensor], camids, k: int = 10
) -> pd.DataFrame:
    """How much several models' features of the same images group by camera, as one number each: the share of an
    image's k nearest neighbours (cosine, as the evaluation ranks) that come from its own camera, averaged over the
    images. Beside it, chance: the share of the other images that come from one's own camera, what neighbours drawn
    at random would give. One row per model, in the given order."""
    rows = {model: neighbour_agreement(features, camids, k=k) for model, features in features_by_model.items()}
    return pd.DataFrame(
        {
            "same_camera": [row["same_label_rate"] for row in rows.values()],
            "chance": [row["chance_rate"] for row in rows.values()],
        },
        index=pd.Index(list(rows), name="model"),
    )


def cluster_summary(labels) -> dict[str, float]:
    """Size of a clustering: clusters (labels >= 0), outliers (labels < 0), their share, the largest cluster."""
    labels = np.asarray(labels)
    sizes = np.unique(labels[labels >= 0], return_counts=True)[1]
    num_outliers = int((labels < 0).sum())
    return {
        "num_points": len(labels),
        "num_clusters": len(sizes),
        "num_outliers": num_outliers,
        "outlier_fraction": num_outliers / max(len(labels), 1),
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,
    }


def clustering_quality(pseudo_labels, true_ids) -> dict[str, float]:
    """Pseudo-labels against ground-truth ids: NMI (arithmetic normalisation), ARI, and pairwise precision (share
    of the pairs put in one cluster that share a true id) and recall (share of the same-id pairs put in one
    cluster). Each outlier counts as a cluster of its own (a singleton: in no pair), for all four scores; a
    precision or recall with no pair to count is NaN."""
    pseudo_labels, true_ids = np.asarray(pseudo_labels), np.asarray(true_ids)
    singletons = _outliers_as_singletons(pseudo_labels)
    contingency = contingency_matrix(true_ids, singletons, sparse=True)
    same_both = _pairs(contingency.data)
    same_cluster = _pairs(np.asarray(contingency.sum(axis=0)).ravel())
    same_id = _pairs(np.asarray(contingency.sum(axis=1)).ravel())
    return {
        "nmi": normalized_mutual_info_score(true_ids, singletons),
        "ari": adjusted_rand_score(true_ids, singletons),
        "pairwise_precision": same_both / same_cluster if same_cluster else float("nan"),
        "pairwise_recall": same_both / same_id if same_id else float("nan"),
    }


def camera_mutual_information(labels, camids) -> float:
    """Mutual information (nats, sklearn's mutual_info_score) between labels and camera ids over the points with
    a label >= 0: DBSCAN outliers (and junk ids, -1) are left out. Paper Fig. 3 plots it for pseudo-labels, with
    the ground-truth ids' value as the reference line."""
    labels, camids = np.asarray(labels), np.asarray(camids)
    kept = labels >= 0
    return float(mutual_info_score(labels[kept], camids[kept])) if kept.any() else 0.0


def camera_adjusted_mutual_information(labels, camids) -> float:
    """MI(labels; camera) minus its expectation under a random permutation of the labels (nats, over the points
    with a label >= 0): the plug-in MI of labels that ignore the camera is far from 0 when clusters are small (about
    0.4 nats for 142 random clusters of 1,524 images over 8 cameras) and grows with their number; this one is about
    0 for them, whatever the number. The expectation is the exact one of the hypergeometric model with both
    marginals fixed (Vinh et al. 2010; sklearn's expected_mutual_information, the term adjusted_mutual_info_score
    subtracts), left in nats rather than normalised so that it reads on the plug-in MI's scale."""
    labels, camids = np.asarray(labels), np.asarray(camids)
    kept = labels >= 0
    if not kept.any():
        return 0.0
    contingency = contingency_matrix(labels[kept], camids[kept], sparse=True)
    expected = expected_mutual_information(contingency, int(kept.sum()))
    return float(mutual_info_score(labels[kept], camids[kept]) - expected)


def camera_information(pseudo_labels, true_ids, camids) -> dict[str, float]:
    """The paper's Fig. 3 quantities, under the one name each has everywhere (adaptation history, notebook 02's
    report, the study's tables): MI with the camera of the pseudo-labels and of the true ids (its reference line),
    plug-in (mi_*) and chance-adjusted (ami_*), in nats. Both over one set of points, the images the clustering
    keeps (DBSCAN's outliers, 26-60% of them at the first clustering, and junk ids left out of both): the true ids'
    value is then the reference for the same images, and the two compare."""
    pseudo_labels, true_ids, camids = np.asarray(pseudo_labels), np.asarray(true_ids), np.asarray(camids)
    kept = (pseudo_labels >= 0) & (true_ids >= 0)
    pseudo_labels, true_ids, camids = pseudo_labels[kept], true_ids[kept], camids[kept]
    return {
        "mi_pseudo_camera": camera_mutual_information(pseudo_labels, camids),
        "mi_true_camera": camera_mutual_information(true_ids, camids),
        "ami_pseudo_camera": camera_adjusted_mutual_information(pseudo_labels, camids),
        "ami_true_camera": camera_adjusted_mutual_information(true_ids, camids),
    }


def lost_identities(pseudo_labels, true_ids) -> np.ndarray:
    """The true ids none of whose images is left once outliers are removed (paper Fig. 4 plots how many)."""
    pseudo_labels, true_ids = np.asarray(pseudo_labels), np.asarray(true_ids)
    return np.setdiff1d(np.unique(true_ids), true_ids[pseudo_labels >= 0])


def camera_probe_accuracy(features, camids, folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Camera leakage of a feature set: accuracy of a linear probe (standardised features, sklearn
    LogisticRegression) predicting the camera, under stratified k-fold cross-validation: fitted on 4/5 of the images,
    scored on the other 1/5, five times (mean and std over the folds), beside chance: the share of the most frequent
    camera (what always answering it scores). Images of one person fall on both sides, so a probe can reach
    `identity_alone_accuracy` from identity features alone: that, not chance, is the floor an adversary can aim at."""
    features, camids = np.asarray(features, dtype=np.float64), np.asarray(camids)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(probe, features, camids, cv=splits, scoring="accuracy")
    chance = np.unique(camids, return_counts=True)[1].max() / len(camids)
    return {"accuracy": float(scores.mean()), "accuracy_std": float(scores.std()), "chance": float(chance)}


def attribute_probe_accuracy(features, values, pids, folds: int = 5, seed: int = 0) -> dict[str, float]:
    """What the features say of a person's attribute (clothing colour, ...): the accuracy of a linear probe
    (standardised features, LogisticRegression) predicting `values`, under cross-validation that keeps each person's
    images on one side (stratified group k-fold by `pids`): the probe must read the attribute from how the images
    look, not recognise people it was fitted on. Beside chance: the share of the most frequent value."""
    features, values, pids = np.asarray(features, dtype=np.float64), np.asarray(values), np.asarray(pids)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    splits = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(probe, features, values, groups=pids, cv=splits, scoring="accuracy")
    chance = np.unique(values, return_counts=True)[1].max() / len(values)
    return {"accuracy": float(scores.mean()), "accuracy_std": float(scores.std()), "chance": float(chance)}


def identity_alone_accuracy(pids, camids) -> float:
    """The share of images whose camera is their person's most frequent one: the best any rule that knows only the
    identity can do at naming the camera."""
    pids, camids = np.asarray(pids), np.asarray(camids)
    if not len(pids):
        return 0.0
    _, person = np.unique(pids, return_inverse=True)
    _, camera = np.unique(camids, return_inverse=True)
    counts = np.zeros((person.max() + 1, camera.max() + 1), dtype=np.int64)
    np.add.at(counts, (person, camera), 1)
    return float(counts.max(axis=1).sum() / len(pids))


def _outliers_as_singletons(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    outliers = labels < 0
    out[outliers] = labels.max(initial=-1) + 1 + np.arange(outliers.sum())
    return out


def _pairs(counts: np.ndarray) -> int:
    counts = np.asarray(counts, dtype=np.int64)
    return int((counts * (counts - 1) // 2).sum())


def labels_against_truth(labels: np.ndarray, pids: np.ndarray, camids: np.ndarray) -> dict[str, float]:
    """What both reports of a clustering (the adaptation's history row, notebook 02's report) measure of its labels:
    size, agreement with the true ids, MI with the camera beside the true ids', and the ids it loses."""
    return {
        **cluster_summary(labels),
        **clustering_quality(labels, pids),
        **camera_information(labels, pids, camids),
        "lost_ids": len(lost_identities(labels, pids)),
    }


def clustering_diagnostics(
    labels: np.ndarray, features: torch.Tensor, pids: np.ndarray, camids: np.ndarray, seed: int
) -> dict[str, float]:
    """The clustering's row: size, quality against the true ids, MI(pseudo-labels; camera) beside the MI(true ids;
    camera) reference on the same clustered images (paper Fig. 3), plug-in and chance-adjusted (ami_*: the
    expectation for labels that ignore the camera subtracted), lost ids (Fig. 4), and the camera leakage of the
    clustering features (cross-validated linear probe accuracy, beside chance and the level the true identity alone
    allows), for images of true ids `pids` seen by cameras `camids`."""
    probe = camera_probe_accuracy(features.numpy(), camids, seed=seed)
    return {
        **labels_against_truth(labels, pids, camids),
        "camera_probe_accuracy": probe["accuracy"],
        "camera_probe_chance": probe["chance"],
        "camera_identity_alone": identity_alone_accuracy(pids, camids),
    }


def group_table(labels, camids, pids) -> pd.DataFrame:
    """One row per group of a labeling (clusters, or the true ids themselves; labels < 0 left out), largest
    first: its size, how many cameras and true ids it holds, the share of its largest camera (camera purity) and
    of its largest true id (id purity), and that camera (0-based)."""
    labels, camids, pids = np.asarray(labels), np.asarray(camids), np.asarray(pids)
    kept = labels >= 0
    by_camera = pd.crosstab(labels[kept], camids[kept])
    by_id = pd.crosstab(labels[kept], pids[kept])
    size = by_camera.sum(axis=1)
    table = pd.DataFrame(
        {
            "size": size,
            "cameras": (by_camera > 0).sum(axis=1),
            "ids": (by_id > 0).sum(axis=1),
            "camera_purity": by_camera.max(axis=1) / size,
            "id_purity": by_id.max(axis=1) / size,
            "main_camera": by_camera.idxmax(axis=1),
        }
    )
    table.index.name = "group"
    return table.sort_values("size", ascending=False, kind="stable")


def clustering_report(pseudo: PseudoLabels, pids, camids) -> dict:
    """Everything notebook 02 measures about a clustering against the true ids and cameras, flat (metrics.json).

    single_camera_clusters / single_camera_ids: the share of clusters, and of true ids, whose images all come from
    one camera (NaN without a cluster); mi_*_camera: MI with the camera (nats, outliers left out; paper Fig. 3),
    ami_*_camera: the same less its expectation for labels that ignore the camera (chance-adjusted);
    lost_ids: true ids with no image left once outliers are dropped (paper Fig. 4)."""
    clusters, identities = group_table(pseudo.labels, camids, pids), group_table(pids, camids, pids)
    return {
        "status": pseudo.status,
        "message": pseudo.message,
        "eps": pseudo.eps,
        **labels_against_truth(pseudo.labels, pids, camids),
        "num_true_ids": len(identities),
        "single_camera_clusters": float((clusters["cameras"] == 1).mean()) if len(clusters) else float("nan"),
        "single_camera_ids": float((identities["cameras"] == 1).mean()),
    }


def feature_report(features, pids, camids, seed: int = 0, k: int = 10) -> dict:
    """What the features themselves encode, before any clustering: a linear camera probe (with chance), and how
    often the k nearest neighbours share the camera and the identity (with chance)."""
    return {
        "camera_probe": camera_probe_accuracy(features, camids, seed=seed),
        "neighbours_camera": neighbour_agreement(features, camids, k=k),
        "neighbours_identity": neighbour_agreement(features, pids, k=k),
    }
