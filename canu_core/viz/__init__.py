"""Every figure of the lab: each function draws, saves to the given path (if any) and returns the figure."""

from .adaptation import final_metrics_table, plot_adaptation
from .clusters import (
    camera_bias_narrative,
    diagnostics_table,
    pick_clusters,
    plot_camera_composition,
    plot_cluster_samples,
)
from .curves import plot_history
from .embedding import camera_and_identity, plot_umap, plot_umap_grid, umap_embedding
from .neighbours import plot_same_camera_neighbours
from .pretraining import compare_first_clusterings, plot_first_clusterings
from .study import (
    plot_claims,
    plot_differences_against,
    plot_lost_ids_per_epoch,
    plot_metric_against,
    plot_metric_per_epoch,
    plot_mi_per_epoch,
)
from .world import plot_camera_samples

__all__ = [
    "camera_and_identity",
    "camera_bias_narrative",
    "compare_first_clusterings",
    "diagnostics_table",
    "final_metrics_table",
    "pick_clusters",
    "plot_adaptation",
    "plot_camera_composition",
    "plot_camera_samples",
    "plot_claims",
    "plot_cluster_samples",
    "plot_differences_against",
    "plot_first_clusterings",
    "plot_history",
    "plot_lost_ids_per_epoch",
    "plot_metric_against",
    "plot_metric_per_epoch",
    "plot_mi_per_epoch",
    "plot_same_camera_neighbours",
    "plot_umap",
    "plot_umap_grid",
    "umap_embedding",
]
