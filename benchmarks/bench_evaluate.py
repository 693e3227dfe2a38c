"""Evaluation at Market-1501 scale: our evaluate_rank against torchreid's Python and Cython ranking, and our sparse
re-ranking's time and peak memory (optionally against torchreid's dense re_ranking).

Run with `make bench` (or `.venv/bin/python benchmarks/bench_evaluate.py`). The references come from PyPI with pip
into .bench/ (git-ignored), nothing is installed:
- torchreid 0.2.5 (sdist): its Python `evaluate_rank` (rank.py, loaded by file path: importing the package would
  pull OpenCV and more) and its dense `re_ranking` (rerank.py);
- the Cython ranking: no torchreid release on PyPI ships `rank_cy.pyx`, so we compile the one in fastreid 1.4.0's
  wheel (fastreid/evaluation/rank_cylib/rank_cy.pyx, credited there to torchreid's: same unstable np.argsort,
  same per-query loops, plus an mINP sum and per-query APs returned), with Cython, into .bench/.
Features are random but clustered by id and shifted by camera, so mAP is far from 0. At this size float32 cosine
distances do tie (about 16k values per row near 1.0, where float32 steps are 6e-8 to 1.2e-7), and every
implementation orders ties its own way (torchreid's by numpy's unstable sort), so the comparison runs on each row's
distances replaced by their rank in that row (float32 integers, all distinct, same order): there every
implementation must give identical R1 and mAP.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import resource
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import psutil
import torch

from canu_core.cluster import re_ranking
from canu_core.evaluation import evaluate_rank, pairwise_distance

CACHE = Path(__file__).resolve().parent.parent / ".bench"
NUM_QUERY, NUM_GALLERY, NUM_IDS, NUM_CAMS, DIM = 3368, 15913, 750, 6, 2048
NUM_DISTRACTORS, NUM_JUNK = 2793, 600  # in the gallery: pid 0 (kept as non-matches), pid -1 (removed)
MAX_RANK = 10


def market_like(seed: int = 0):
    """Query/gallery features, pids and cameras shaped like Market-1501's test split."""
    rng = np.random.default_rng(seed)
    num_true = NUM_GALLERY - NUM_DISTRACTORS - NUM_JUNK
    g_pids = np.concatenate(
        [
            np.arange(1, NUM_IDS + 1),
            rng.integers(1, NUM_IDS + 1, num_true - NUM_IDS),
            np.zeros(NUM_DISTRACTORS, int),
            np.full(NUM_JUNK, -1),
        ]
    )
    g_pids = rng.permutation(g_pids)
    q_pids = np.concatenate([np.arange(1, NUM_IDS + 1), rng.integers(1, NUM_IDS + 1, NUM_QUERY - NUM_IDS)])
    q_camids, g_camids = rng.integers(0, NUM_CAMS, NUM_QUERY), rng.integers(0, NUM_CAMS, NUM_GALLERY)
    centres = rng.standard_normal((NUM_IDS + 1, DIM), dtype=np.float32)
    camera_bias = rng.standard_normal((NUM_CAMS, DIM), dtype=np.float32)

    def features(pids, camids):
        identity = np.where((pids > 0)[:, None], centres[np.maximum(pids, 0)], 0)
        noise = rng.standard_normal((len(pids), DIM), dtype=np.float32)
        return torch.from_numpy(identity + 0.5 * camera_bias[camids] + 3.5 * noise)

    return features(q_pids, q_camids), features(g_pids, g_camids), q_pids, g_pids, q_camids, g_camids


def pip_download(requirement: str, *options: str) -> Path:
    """The file pip downloads for `requirement` into .bench/ (once)."""
    target = CACHE / "downloads"
    name = requirement.split("==")[0]
    found = sorted(target.glob(f"{name}-*"))
    if not found:
        print(f"  pip download {requirement} {' '.join(options)} -> {target}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *options, "-d", str(target), requirement],
            check=True,
        )
        found = sorted(target.glob(f"{name}-*"))
    return found[0]


def torchreid_file(relative: str) -> Path:
    """A file of the torchreid 0.2.5 sdist, extracted into .bench/."""
    path = CACHE / "torchreid-0.2.5" / relative
    if not path.exists():
        with tarfile.open(pip_download("torchreid==0.2.5", "--no-binary", ":all:")) as archive:
            archive.extract(f"torchreid-0.2.5/{relative}", CACHE, filter="data")
    return path


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cython_ranking():
    """fastreid's Cython build of torchreid's ranking loop, compiled once into .bench/rank_cy/."""
    build = CACHE / "rank_cy"
    built = sorted(build.glob("rank_cy*.so"))
    if not built:
        if importlib.util.find_spec("Cython") is None:
            sys.exit(
                "Cython is needed to build the Cython reference: pip install 'Cython>=3' "
                "(make bench installs it with the bench extra)"
            )
        build.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(pip_download("fastreid==1.4.0", "--only-binary", ":all:")) as wheel:
            (build / "rank_cy.pyx").write_bytes(wheel.read("fastreid/evaluation/rank_cylib/rank_cy.pyx"))
        (build / "setup.py").write_text(
            "import numpy\nfrom Cython.Build import cythonize\nfrom setuptools import Extension, setup\n"
            "setup(ext_modules=cythonize([Extension('rank_cy', ['rank_cy.pyx'], "
            "include_dirs=[numpy.get_include()])], quiet=True))\n"
        )
        print(f"  compiling fastreid's rank_cy.pyx with Cython in {build}")
        subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--inplace"], cwd=build, check=True, stdout=subprocess.DEVNULL
        )
        built = sorted(build.glob("rank_cy*.so"))
    return load_module("rank_cy", built[0])


def timed(function, *args, repeat: int = 1, **kwargs):
    """(result, best wall-clock seconds over `repeat` runs)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return result, best


def tie_free(distmat: np.ndarray) -> np.ndarray:
    """Each row's distances replaced by their rank in the row (ties broken by gallery index): same order, no ties."""
    ranks = np.empty_like(distmat)
    order = np.argsort(distmat, axis=1, kind="stable")
    np.put_along_axis(ranks, order, np.arange(distmat.shape[1], dtype=distmat.dtype)[None], axis=1)
    return ranks


def bench_ranking() -> None:
    print(
        "== ranking: Market scale, "
        f"{NUM_QUERY} queries x {NUM_GALLERY} gallery ({NUM_DISTRACTORS} distractors, {NUM_JUNK} junk), {DIM}-d"
    )
    query, gallery, q_pids, g_pids, q_camids, g_camids = market_like()
    distmat, seconds = timed(pairwise_distance, query, gallery, repeat=3)
    print(f"cosine distance matrix (torch, {torch.get_num_threads()} threads): {seconds:.2f} s")
    distmat = tie_free(distmat.numpy())
    ours, ours_s = timed(evaluate_rank, distmat, q_pids, g_pids, q_camids, g_camids, MAX_RANK, repeat=3)
    # torchreid never sees junk images (its Market loader drops them), so it gets the junk-free gallery.
    kept = g_pids != -1
    reference_args = (np.ascontiguousarray(distmat[:, kept]), q_pids, g_pids[kept], q_camids, g_camids[kept])
    cython = cython_ranking()
    (cy_cmc, cy_aps, _), cy_s = timed(cython.evaluate_cy, *reference_args, MAX_RANK, repeat=3)
    rank_py = load_module("torchreid_rank", torchreid_file("torchreid/reid/metrics/rank.py"))
    print("torchreid Python evaluate_rank (about a minute on 2 cores)...")
    (py_cmc, py_map), py_s = timed(rank_py.evaluate_rank, *reference_args, max_rank=MAX_RANK, use_cython=False)

    rows = [
        ("canu_core evaluate_rank", ours.cmc[0], ours.mAP, ours_s),
        ("torchreid Cython (fastreid build)", cy_cmc[0], float(np.mean(cy_aps)), cy_s),
        ("torchreid Python", py_cmc[0], py_map, py_s),
    ]
    print(f"{'implementation':36s} {'R1 %':>9s} {'mAP %':>11s} {'seconds':>8s} {'ours faster':>11s}")
    for name, r1, m_ap, seconds in rows:
        print(f"{name:36s} {100 * r1:9.4f} {100 * m_ap:11.6f} {seconds:8.2f} {seconds / ours_s:10.1f}x")
    print(f"skipped queries: {ours.num_skipped_queries}")
    same_r1 = abs(ours.cmc[0] - py_cmc[0]) < 1e-6 and abs(ours.cmc[0] - cy_cmc[0]) < 1e-6
    print(
        f"identical R1: {same_r1};  mAP differences: Python {abs(ours.mAP - py_map):.1e}, "
        f"Cython {abs(ours.mAP - float(np.mean(cy_aps))):.1e} (Cython sums in float32)"
    )
    if not same_r1 or abs(ours.mAP - py_map) > 1e-9:
        sys.exit("MISMATCH with torchreid")


def rerank_child(dense_check: bool) -> None:
    """Runs in a fresh process so that its peak RSS is the re-ranking's own; prints one JSON line."""
    query, gallery, *_ = market_like()
    gc.collect()
    before = psutil.Process().memory_info().rss
    distance, seconds = timed(re_ranking, query, gallery)
    report = {
        "seconds": seconds,
        "rss_before_mib": before / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if dense_check:
        rerank_dense = load_module("torchreid_rerank", torchreid_file("torchreid/reid/utils/rerank.py"))
        q_g, q_q, g_g = (
            pairwise_distance(a, b).numpy() for a, b in ((query, gallery), (query, query), (gallery, gallery))
        )
        expected, report["dense_seconds"] = timed(rerank_dense.re_ranking, q_g, q_q, g_g)
        report["dense_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        difference = np.abs(expected - distance.numpy())
        report["max_abs_difference"] = float(difference.max())
        report["entries_over_1e-5"] = int((difference > 1e-5).sum())
        report["queries_over_1e-5"] = int((difference > 1e-5).any(axis=1).sum())
    print(json.dumps(report))


def bench_re_ranking(dense_check: bool) -> None:
    print(f"\n== re-ranking (k1=20, k2=6, lambda=0.3) on {NUM_QUERY + NUM_GALLERY} images, in a fresh process")
    child = [sys.executable, __file__, "--rerank-child"] + (["--dense-check"] if dense_check else [])
    report = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    print(
        f"sparse re_ranking: {report['seconds']:.1f} s, process peak RSS {report['peak_rss_mib'] / 1024:.2f} GiB "
        f"(RSS before it: {report['rss_before_mib'] / 1024:.2f} GiB: interpreter, torch, features)"
    )
    if dense_check:
        print(
            f"torchreid dense re_ranking: {report['dense_seconds']:.1f} s, process peak RSS "
            f"{report['dense_peak_rss_mib'] / 1024:.2f} GiB"
        )
        print(
            f"max |difference| {report['max_abs_difference']:.1e}; entries over 1e-5: "
            f"{report['entries_over_1e-5']} of {NUM_QUERY * NUM_GALLERY} in {report['queries_over_1e-5']} queries "
            "(differences come from ties in torchreid's float32 neighbour ranking: see benchmarks/README.md)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dense-check",
        action="store_true",
        help="also run torchreid's dense re_ranking (several minutes, ~10 GiB) and compare",
    )
    parser.add_argument("--rerank-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rerank_child:
        rerank_child(args.dense_check)
        return
    bench_ranking()
    bench_re_ranking(args.dense_check)


if __name__ == "__main__":
    main()
