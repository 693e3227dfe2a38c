"""Seeding and threads: a seed makes a CPU run repeat exactly, at a given thread count."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices), and ask torch for deterministic kernels where it has them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def set_threads(threads: int) -> None:
    """Use `threads` CPU threads in torch, in the BLAS / OpenMP pools numpy, scipy and scikit-learn call, and in
    faiss: floating-point sums are split by thread, so the count is part of what makes a run repeat bit for bit."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)
    try:
        import faiss
    except ImportError:  # faiss is a dependency; without it there is no faiss pool to size
        return
    faiss.omp_set_num_threads(threads)


def rng_state() -> dict:
    """Every RNG state a resumed run needs to continue exactly where it stopped, in forms that
    `torch.load(weights_only=True)` accepts (tensors, ints, floats, tuples): numpy's key as an int64 tensor."""
    kind, key, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "key": torch.from_numpy(key.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["key"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
