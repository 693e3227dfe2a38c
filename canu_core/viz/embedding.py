"""UMAP views of a feature set: the same 2-D points coloured by several labelings side by side (camera, true
identity, pseudo-label, ...).

If features group by camera rather than by identity, the camera panel shows tidy blobs and the identity panel a
mix: that is the camera bias the adversary is meant to remove.
"""

from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..data.records import ImageRecord, ids_and_cameras
from .common import CATEGORY_COLOURS, CATEGORY_MARKERS, save_figure

# A panel colours at most this many groups, each in a colour and marker of its own: more colours than the palette's
# could not be told apart. A labeling coloured entirely gets a legend (cameras); a random sample of its groups
# (identities, clusters) does not (a legend of random ids would say nothing).
MAX_COLOURED_GROUPS = len(CATEGORY_COLOURS)


def umap_embedding(features: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP of L2-normalised features, cosine metric; reproducible for a given seed (so single-threaded).

    The exact nearest neighbours come from scikit-learn and are handed to UMAP: its own neighbour search compiles
    a numba function in every new process (about 14 s on the 2-core machine, longer than the embedding of a few
    thousand points), and exact neighbours are what UMAP computes for small sets anyway; the rest of UMAP's numba
    functions are cached on disk (`cache_umap_compilation`)."""
    import umap  # imported here: it pays numba compilation (~15 s) on first use
    from sklearn.neighbors import NearestNeighbors

    cache_umap_compilation()

    features = np.asarray(features, dtype=np.float32)
    n_neighbors = min(n_neighbors, len(features) - 1)  # as UMAP truncates it for small sets
    search = NearestNeighbors(n_neighbors=n_neighbors, metric="cosine", algorithm="brute").fit(features)
    distances, indices = search.kneighbors(features)  # each point is its own first neighbour, as UMAP expects
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,
        n_jobs=1,
        precomputed_knn=(indices, distances.astype(np.float32), None),
    )
    with warnings.catch_warnings():  # without a search index UMAP cannot embed new points later: not needed here
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        return reducer.fit_transform(features)


def cache_umap_compilation() -> None:
    """Turn on numba's disk cache for UMAP's compiled functions: UMAP leaves it off for its embedding's functions
    (fuzzy_simplicial_set's and the layout's), so every new process compiled them again, about 8 s on the 2-core
    machine before the first embedding; with the cache, the first process compiles and writes them next to UMAP's
    code and every later one loads them in about 0.2 s. The same machine code: the embedding does not change."""
    import umap.layouts
    import umap.umap_
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.layouts):
        for function in vars(module).values():
            if isinstance(function, CPUDispatcher) and isinstance(function._cache, NullCache):
                function.enable_caching()


def camera_and_identity(records: Sequence[ImageRecord]) -> dict[str, np.ndarray]:
    """The two labelings every before / after view shows: camera (numbered from 1, as the world draws them) and true
    identity."""
    pids, camids = ids_and_cameras(records)
    return {"camera": camids + 1, "true identity": pids}


def plot_umap(
    points: np.ndarray,
    labelings: Mapping[str, np.ndarray],
    title: str = "",
    path=None,
    max_groups: int = MAX_COLOURED_GROUPS,
    seed: int = 0,
) -> Figure:
    """One panel per labeling (panel name -> one label per point), all on the same 2-D points.

    A labeling with at most `max_groups` values (and no more than the palette's 8) is coloured entirely, one
    colour-blind-safe colour and one marker per value; with more (identities, clusters), that many random groups are
    coloured and the others drawn grey, since 300 colours cannot be told apart. Negative labels (DBSCAN outliers)
    are never coloured. Labels are categories: colours follow no numeric scale.
    """
    fig = Figure(figsize=(5.5 * len(labelings), 5.5), layout="constrained")
    axes = fig.subplots(1, len(labelings), squeeze=False)[0]
    rng = np.random.default_rng(seed)
    for ax, (name, labels) in zip(axes, labelings.items()):
        _labeling_panel(ax, points, np.asarray(labels), name, max_groups, rng)
    fig.suptitle(title)
    save_figure(fig, path)
    return fig


def plot_umap_grid(
    points: Mapping[str, np.ndarray],
    labelings: Mapping[str, np.ndarray],
    title: str = "",
    path=None,
    max_groups: int = MAX_COLOURED_GROUPS,
    seed: int = 0,
) -> Figure:
    """One row per model (row name -> its 2-D points of the same images), one column per labeling: the same images
    before and after, side by side. Each row samples the same `max_groups` groups, so an identity keeps its colour
    from row to row."""
    fig = Figure(figsize=(4.5 * len(labelings), 4.2 * len(points)), layout="constrained")
    axes = fig.subplots(len(points), len(labelings), squeeze=False)
    for row, (model, model_points) in zip(axes, points.items()):
        for ax, (name, labels) in zip(row, labelings.items()):
            _labeling_panel(ax, model_points, np.asarray(labels), name, max_groups, np.random.default_rng(seed))
            ax.set_title(f"{model}: {ax.get_title()}", fontsize=9)
    fig.suptitle(title)
    save_figure(fig, path)
    return fig


def _labeling_panel(
    ax, points: np.ndarray, labels: np.ndarray, name: str, max_groups: int, rng: np.random.Generator
) -> None:
    groups = np.unique(labels[labels >= 0])
    limit = min(max_groups, MAX_COLOURED_GROUPS)
    chosen = groups if len(groups) <= limit else np.sort(rng.choice(groups, size=limit, replace=False))
    shown = np.isin(labels, chosen)
    ax.scatter(points[~shown, 0], points[~shown, 1], s=3, c="lightgrey", linewidths=0)
    size = 18 if len(chosen) == len(groups) else 30  # a sample of groups: larger marks, to find them among the grey
    names = labels[shown].astype(str)  # categories, not a colour scale
    order = chosen.astype(str)
    legend = 0 < len(chosen) == len(groups)
    if len(chosen):
        import seaborn as sns  # only where a panel is drawn: importing it costs every kernel half a second

        sns.scatterplot(
            x=points[shown, 0],
            y=points[shown, 1],
            hue=names,
            hue_order=order,
            palette=list(CATEGORY_COLOURS[: len(order)]),
            style=names,
            style_order=order,
            markers=list(CATEGORY_MARKERS[: len(order)]),
            s=size,
            linewidth=0,
            ax=ax,
            legend=legend,
        )
    if legend:
        ax.legend(title=name, markerscale=2, fontsize=7, loc="best")
    ax.set_title(_panel_title(name, len(chosen), len(groups), int((labels < 0).sum())))
    ax.set_xticks([])
    ax.set_yticks([])


def _panel_title(name: str, num_shown: int, num_groups: int, num_outliers: int) -> str:
    title = f"coloured by {name}"
    if num_shown < num_groups:
        title += f"\n{num_shown} random of {num_groups} groups; others grey"
    if num_outliers:
        title += f"\n{num_outliers} outliers grey"
    return title
