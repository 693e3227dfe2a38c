"""The widget UIs of notebook 02, each one call: they wrap the same functions that draw (and save) its figures,
without saving. Each returns an ipywidgets `interactive`; a notebook cell displays it, a test calls `.update()`
and reads `.result`."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from IPython.display import display
from ipywidgets import Dropdown, FloatSlider, IntSlider, interactive

from .cluster.diagnostics import clustering_report, group_table
from .cluster.jaccard import upper_jaccard_distance
from .cluster.pseudo_labels import DBSCANClustering, rho_eps
from .data.records import ImageRecord
from .viz.clusters import diagnostics_table, plot_camera_composition, plot_cluster_samples


def cluster_browser(records: Sequence[ImageRecord], labels, n_images: int = 8) -> interactive:
    """A dropdown of the clusters (largest first, with their size, cameras and true ids) showing sample images of
    the chosen one; it redraws on every change."""
    labels = np.asarray(labels)
    table = group_table(labels, [r.camid for r in records], [r.pid for r in records])
    options = [
        (f"cluster {row.Index}: {row.size} images, {row.cameras} cameras, {row.ids} ids", int(row.Index))
        for row in table.itertuples()
    ]
    # a clustering without a cluster (every image an outlier) gets one disabled entry that says so
    dropdown = Dropdown(
        options=options or [("no cluster: every image is an outlier", -1)], description="cluster", disabled=not options
    )

    def show(cluster, n_images, seed):
        return plot_cluster_samples(records, labels, [cluster] if cluster >= 0 else [], n_images=n_images, seed=seed)

    return interactive(
        show,
        {"auto_display": True},
        cluster=dropdown,
        n_images=IntSlider(value=n_images, min=2, max=16),
        seed=IntSlider(value=0, min=0, max=20),
    )


def recluster_widget(
    features,
    pids,
    camids,
    num_cameras: int,
    eps: float | None = None,
    k1: int = 20,
    k2: int = 6,
    min_samples: int = 4,
    rho: float = 0.0016,
) -> interactive:
    """DBSCAN again with another eps and k1, on a button press (a clustering takes seconds): the diagnostics table
    and the camera composition of the new clusters. eps None starts the slider at the rho rule's value."""
    if eps is None:
        eps = rho_eps(upper_jaccard_distance(features, k1, k2), rho)

    def recluster(eps, k1):
        pseudo = DBSCANClustering(eps=eps, min_samples=min_samples, k1=k1, k2=k2)(features)
        display(diagnostics_table(clustering_report(pseudo, pids, camids)))
        return plot_camera_composition(pseudo.labels, camids, pids, num_cameras, title=pseudo.message)

    return interactive(
        recluster,
        {"manual": True, "manual_name": "Re-cluster", "auto_display": True},
        eps=FloatSlider(value=eps, min=0.01, max=0.99, step=0.01, readout_format=".3f"),
        k1=IntSlider(value=k1, min=5, max=min(40, len(features) - 1)),
    )
