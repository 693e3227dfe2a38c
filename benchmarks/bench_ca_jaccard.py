"""The camera-aware pseudo-label step (`jaccard: ca`: CA-Jaccard distance, eps, DBSCAN) at MSMT17's train size, and
against a dense rendering of CA-Jaccard's public code (benchmarks/dense_ca_reference.py) where that fits.

Run with `.venv/bin/python benchmarks/bench_ca_jaccard.py` (about 3 minutes on a quiet machine, 2.5 GiB at most;
`--quick`: small sizes). Each step runs in its own fresh process, so each peak RSS is its own (interpreter, torch
and the features included). Features: bench_cluster.py's (2048-d unit vectors, 80% around identity centres), each
image given one of 6 cameras (Market-1501's count) or 15 (MSMT17's) at random. Settings: train_caj.py's defaults
with CKRNNs and CLQE on (k1_intra 5, k1_inter 20, k2_intra = k2_inter = 3, k2 6), no warm-up (its epochs after the
first). The comparison uses CA-Jaccard's fixed eps (0.6, as train_caj.py); the large size also runs our rho rule
(rho 1.6e-3, the paper's), the path a run with `eps: null` takes, and `jaccard: mmt` (k1 20, k2 6, rho rule) as a
yardstick of the machine's load (bench_cluster.py's figure for it on a quiet machine: 20.2 s). The script exits
non-zero unless the labels are identical and the distances within 1e-5. Timings move with the machine's load
(printed): compare within one run.
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
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cluster import clustered_features  # noqa: E402

COMPARED = {"name": "Market-1501-like, compared", "num_points": 6000, "num_ids": 360, "num_cameras": 6}
ALONE = {"name": "MSMT17 train", "num_points": 32621, "num_ids": 1041, "num_cameras": 15}
QUICK_COMPARED = {"name": "quick, compared", "num_points": 2000, "num_ids": 120, "num_cameras": 6}
QUICK_ALONE = {"name": "quick, alone", "num_points": 6000, "num_ids": 360, "num_cameras": 15}
FIXED_EPS = 0.6  # train_caj.py's --eps
K1, K2 = 30, 6  # train_caj.py's (read by CKRNNs + CLQE only as the switch k2 != 1)


def child(implementation: str, eps: str, folder: str, compared: str) -> None:
    """Runs in a fresh process: one pseudo-label step on folder's features and cameras; labels saved, and when
    `compared` is "yes" the distance too (computed again after the timing: DBSCANClustering keeps none); one JSON
    line printed."""
    features = np.load(Path(folder) / "features.npy")
    cameras = np.load(Path(folder) / "cameras.npy")
    rss_before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    if implementation == "reference":
        from dense_ca_reference import compute_ca_jaccard_distance, dbscan_labels

        distance = compute_ca_jaccard_distance(features, cameras, K1, K2)
        labels, used_eps = dbscan_labels(distance, float(eps)), float(eps)
    elif implementation == "mmt":
        import torch

        from canu_core.cluster import DBSCANClustering

        clustering = DBSCANClustering(rho=1.6e-3, jaccard="mmt", progress=sys.stderr.isatty())
        labels, used_eps = clustering(torch.from_numpy(features)).labels, clustering.eps
    else:
        import torch

        from canu_core.cluster import CameraAware, DBSCANClustering

        settings = CameraAware(ckrnns=True, clqe=True)
        clustering = DBSCANClustering(
            eps=None if eps == "rho" else float(eps),
            rho=1.6e-3,
            k1=K1,
            k2=K2,
            jaccard="ca",
            cameras=cameras,
            camera_aware=settings,
            clqe_warmup=False,
            progress=sys.stderr.isatty(),
        )
        labels, used_eps = clustering(torch.from_numpy(features)).labels, clustering.eps
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(Path(folder) / f"{implementation}_{eps}_labels.npy", labels)
    if implementation == "reference" and compared == "yes":
        np.save(Path(folder) / "reference_distance.npy", distance)
    elif compared == "yes":
        from canu_core.cluster import compute_camera_jaccard_distance

        distance = compute_camera_jaccard_distance(features, cameras, K1, K2, CameraAware())
        sp.save_npz(Path(folder) / "ours_distance.npz", distance)
    print(json.dumps({"seconds": seconds, "eps": used_eps, "rss_before_mib": rss_before / 2**20, "peak_rss_mib": peak}))


def run_child(implementation: str, eps: str, folder: Path, compared: bool = False) -> tuple[dict, np.ndarray]:
    command = [sys.executable, __file__, "--child", implementation, eps, str(folder), "yes" if compared else "no"]
    result = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)  # progress bars: stderr
    report = json.loads(result.stdout.splitlines()[-1])
    labels = np.load(folder / f"{implementation}_{eps}_labels.npy")
    report["clusters"], report["outliers"] = int(labels.max()) + 1, int((labels < 0).sum())
    print(
        f"  {implementation:9s} eps {eps:>4s}: {report['seconds']:6.1f} s, peak RSS "
        f"{report['peak_rss_mib'] / 1024:5.2f} GiB (before the step: {report['rss_before_mib'] / 1024:.2f} GiB), "
        f"eps {report['eps']:.6f}, {report['clusters']} clusters, {report['outliers']} outliers, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return report, labels


def write_inputs(size: dict, folder: Path) -> None:
    np.save(folder / "features.npy", clustered_features(size["num_points"], size["num_ids"]))
    cameras = np.random.default_rng(1).integers(0, size["num_cameras"], size["num_points"])
    np.save(folder / "cameras.npy", cameras)


def header(size: dict) -> None:
    print(
        f"== {size['name']}: N={size['num_points']}, {size['num_ids']} ids, {size['num_cameras']} cameras, 2048-d, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def compare(size: dict, folder: Path) -> bool:
    header(size)
    write_inputs(size, folder)
    reference, reference_labels = run_child("reference", str(FIXED_EPS), folder, compared=True)
    ours, labels = run_child("ours", str(FIXED_EPS), folder, compared=True)
    expected = np.load(folder / "reference_distance.npy")
    coo = sp.load_npz(folder / "ours_distance.npz").tocoo()
    dense = np.ones(expected.shape, dtype=np.float64)
    dense[coo.row, coo.col] = coo.data
    difference = float(np.abs(dense - expected).max())
    from canu_core.cluster import relabel_by_first_member

    identical = bool(np.array_equal(relabel_by_first_member(reference_labels), labels))
    print(
        f"  ours: {reference['seconds'] / ours['seconds']:.1f}x faster than the dense public code, peak RSS "
        f"{ours['peak_rss_mib'] / reference['peak_rss_mib']:.3f} of its; max |distance difference| "
        f"{difference:.1e} over {expected.size} entries; labels identical: {identical}"
    )
    return identical and difference < 1e-5


def alone(size: dict, folder: Path) -> None:
    header(size)
    print("  (goal: < 60 s and < 2 GB)")
    write_inputs(size, folder)
    run_child("ours", str(FIXED_EPS), folder)
    run_child("ours", "rho", folder)
    run_child("mmt", "rho", folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (N=2000 compared, N=6000 alone)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="bench_ca_jaccard_") as folder:
        same = compare(QUICK_COMPARED if args.quick else COMPARED, Path(folder))
        alone(QUICK_ALONE if args.quick else ALONE, Path(folder))
    if not same:
        sys.exit("MISMATCH: our camera-aware distance or labels differ from the dense public code's")


if __name__ == "__main__":
    main()
