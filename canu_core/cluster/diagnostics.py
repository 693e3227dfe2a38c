"""Diagnostics of a feature set or a clustering: what the features group by, and how labels relate to cameras."""
from __future__ import annotations

import numpy as np
import torch


def _nearest_neighbours(features: np.ndarray | torch.Tensor, k: int, chunk: int = 4096) -> np.ndarray:
    """Indices of each point's k nearest neighbours by cosine similarity, the point itself excluded."""
    x = torch.nn.functional.normalize(torch.as_tensor(np.asarray(features), dtype=torch.float32), dim=1)
    out = []
    for start in range(0, len(x), chunk):
        sims = x[start:start + chunk] @ x.t()
        sims[torch.arange(len(sims)), torch.arange(start, start + len(sims))] = float("-inf")
        out.append(sims.topk(k, dim=1).indices)
    return torch.cat(out).numpy()


def neighbour_agreement(features, labels, k: int = 10) -> dict[str, float]:
    """Share of each point's k nearest neighbours with the same label, beside the share expected by chance (the
    probability that another point drawn at random shares the label) and their ratio (lift). Computed for camera and for identity labels, it says
    which of the two the features group by."""
    labels = np.asarray(labels)
    neighbours = _nearest_neighbours(features, k)
    observed = float((labels[neighbours] == labels[:, None]).mean())
    _, counts = np.unique(labels, return_counts=True)
    chance = float((counts * (counts - 1)).sum() / (len(labels) * (len(labels) - 1)))
    return {"same_label_rate": observed, "chance_rate": chance, "lift": observed / chance}
