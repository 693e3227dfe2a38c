"""Every figure of the lab: each function draws, saves to the given path (if any) and returns the figure."""

from .adaptation import plot_adaptation
from .clusters import plot_camera_composition, plot_cluster_samples
from .curves import plot_history
from .embedding import camera_and_identity, plot_umap, plot_umap_grid, umap_embedding
from .study import plot_claims, plot_lost_ids_per_epoch, plot_metric_against, plot_metric_per_epoch, plot_mi_per_epoch

__all__ = [
    "camera_and_identity",
    "plot_adaptation",
    "plot_camera_composition",
    "plot_claims",
    "plot_cluster_samples",
    "plot_history",
    "plot_lost_ids_per_epoch",
    "plot_metric_against",
    "plot_metric_per_epoch",
    "plot_mi_per_epoch",
    "plot_umap",
    "plot_umap_grid",
    "umap_embedding",
]
