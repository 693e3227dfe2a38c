"""Clustering the target: k-reciprocal Jaccard distances (MMT's and SpCL's), DBSCAN (eps by the rho rule) or
k-means pseudo-labels with their centroids, and the diagnostics of a clustering against the true ids and cameras."""

from .diagnostics import (
    camera_adjusted_mutual_information,
    camera_information,
    camera_mutual_information,
    camera_probe_accuracy,
    clustering_quality,
    identity_alone_accuracy,
    lost_identities,
    neighbour_agreement,
)
from .kreciprocal import (
    Neighbours,
    expanded_reciprocal_pairs,
    jaccard_distance,
    k_reciprocal_encoding,
    nearest_neighbours,
    pair_similarity,
    re_ranking,
    reciprocal_mask,
)
from .pseudo_labels import (
    DBSCANClustering,
    KMeansClustering,
    PseudoLabels,
    TrueIdentities,
    cluster_centroids,
    pseudo_labels_from,
    rho_eps,
)

__all__ = [
    "DBSCANClustering",
    "KMeansClustering",
    "Neighbours",
    "PseudoLabels",
    "TrueIdentities",
    "attribute_probe_accuracy",
    "camera_adjusted_mutual_information",
    "camera_information",
    "camera_mutual_information",
    "camera_probe_accuracy",
    "cluster_centroids",
    "clustering_quality",
    "expanded_reciprocal_pairs",
    "identity_alone_accuracy",
    "jaccard_distance",
    "k_reciprocal_encoding",
    "lost_identities",
    "nearest_neighbours",
    "neighbour_agreement",
    "pair_similarity",
    "pseudo_labels_from",
    "re_ranking",
    "reciprocal_mask",
    "rho_eps",
]
