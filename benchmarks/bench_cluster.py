"""The pseudo-label step (k-reciprocal Jaccard distance, eps by the rho rule, DBSCAN) at Market-1501 and MSMT17
train sizes: our sparse DBSCANClustering, both variants ("mmt" and "spcl"), against the dense SpCL reference
(benchmarks/dense_reference.py).

Run with `.venv/bin/python benchmarks/bench_cluster.py` (about 3 minutes on a quiet machine, 3 GiB at most;
`--quick`: small sizes). All run on the same features, each in its own fresh process so that each peak RSS is its
own (that includes the interpreter, torch and the features). Features: 2048-d, L2-normalised, 80% of them around
identity centres (at least 4 images per identity), the rest random directions (noise). Our "spcl" labels must
equal the reference's (numbered the same way); "mmt" is another algorithm (lists one point longer, row-scaled
weights): its labels are only compared (adjusted Rand index). Timings move with the machine's load (printed):
compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from sklearn.metrics import adjusted_rand_score

from canu_core.cluster import relabel_by_first_member

DIM = 2048
MARKET = {"name": "Market-1501 train", "num_points": 12936, "num_ids": 751}
MSMT = {"name": "MSMT17 train", "num_points": 32621, "num_ids": 1041}
QUICK_MARKET = {"name": "quick", "num_points": 3000, "num_ids": 180}
QUICK_MSMT = {"name": "quick, larger", "num_points": 6000, "num_ids": 360}
VARIANTS = ("mmt", "spcl")


def clustered_features(num_points: int, num_ids: int, seed: int = 0, clustered_share: float = 0.8) -> np.ndarray:
    """[num_points, DIM] float32 unit vectors: identity centre + noise (cosine ~0.6 between two images of one id,
    ~0 across ids), images shuffled; the points beyond clustered_share are random directions."""
    rng = np.random.default_rng(seed)
    num_clustered = int(clustered_share * num_points)
    per_id = 4 + rng.multinomial(num_clustered - 4 * num_ids, np.full(num_ids, 1.0 / num_ids))
    centres = rng.standard_normal((num_ids, DIM), dtype=np.float32)
    points = rng.standard_normal((num_points, DIM), dtype=np.float32)
    points[: per_id.sum()] = 0.8 * points[: per_id.sum()] + np.repeat(centres, per_id, axis=0)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points[rng.permutation(num_points)]


def child(implementation: str, features_path: str, labels_path: str) -> None:
    """Runs in a fresh process: one pseudo-label step, labels saved, one JSON line printed."""
    progress = sys.stderr.isatty()
    if implementation == "reference":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from dense_reference import pseudo_labels

        def step(features):
            return pseudo_labels(features, progress=progress)
    else:
        from canu_core.cluster import DBSCANClustering

        def step(features):
            clustering = DBSCANClustering(jaccard=implementation, progress=progress)
            return clustering(features).labels, clustering.eps

    features = torch.from_numpy(np.load(features_path))
    rss_before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    labels, eps = step(features)
    seconds = time.perf_counter() - start
    np.save(labels_path, labels)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "eps": eps,
                "rss_before_mib": rss_before / 2**20,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run_child(implementation: str, features_path: Path, folder: Path) -> tuple[dict, np.ndarray]:
    labels_path = folder / f"{implementation}_labels.npy"
    command = [sys.executable, __file__, "--child", implementation, str(features_path), str(labels_path)]
    result = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)  # progress bars: stderr
    report = json.loads(result.stdout.splitlines()[-1])
    labels = np.load(labels_path)
    report["clusters"], report["outliers"] = int(labels.max()) + 1, int((labels < 0).sum())
    print(
        f"  {implementation:9s}: {report['seconds']:6.1f} s, peak RSS {report['peak_rss_mib'] / 1024:5.2f} GiB "
        f"(before the step: {report['rss_before_mib'] / 1024:.2f} GiB), eps {report['eps']:.6f}, "
        f"{report['clusters']} clusters, {report['outliers']} outliers, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return report, labels


def write_features(size: dict, folder: Path) -> Path:
    path = folder / f"features_{size['num_points']}.npy"
    np.save(path, clustered_features(size["num_points"], size["num_ids"]))
    return path


def compare(size: dict, folder: Path) -> bool:
    print(
        f"== {size['name']}: N={size['num_points']}, {size['num_ids']} ids, {DIM}-d, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    features_path = write_features(size, folder)
    reference, reference_labels = run_child("reference", features_path, folder)
    ours = {variant: run_child(variant, features_path, folder) for variant in VARIANTS}
    for variant, (report, labels) in ours.items():  # the goals are for Market's size
        print(
            f"  {variant}: {reference['seconds'] / report['seconds']:.1f}x faster than the reference (goal >= 4x), "
            f"peak RSS {report['peak_rss_mib'] / reference['peak_rss_mib']:.3f} of the reference's (goal <= 1/3); "
            f"over the RSS before the step: {_growth(report) / _growth(reference):.2f}; "
            f"ARI against the reference {adjusted_rand_score(reference_labels, labels):.6f}"
        )
    spcl, spcl_labels = ours["spcl"]
    identical = bool(np.array_equal(relabel_by_first_member(reference_labels), spcl_labels))  # same numbering
    print(
        f"  spcl labels identical to the reference's: {identical}, "
        f"|eps difference| {abs(spcl['eps'] - reference['eps']):.1e}"
    )
    return identical


def alone(size: dict, folder: Path) -> None:
    print(
        f"== {size['name']}: N={size['num_points']}, {size['num_ids']} ids, ours alone (goal < 60 s, < 3 GiB), "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    features_path = write_features(size, folder)
    for variant in VARIANTS:
        run_child(variant, features_path, folder)


def _growth(report: dict) -> float:
    return report["peak_rss_mib"] - report["rss_before_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (N=3000 compared, N=6000 alone)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as folder:
        identical = compare(QUICK_MARKET if args.quick else MARKET, Path(folder))
        alone(QUICK_MSMT if args.quick else MSMT, Path(folder))
    if not identical:
        sys.exit("MISMATCH: the spcl labels differ from the reference's")


if __name__ == "__main__":
    main()
