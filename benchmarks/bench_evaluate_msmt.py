"""Evaluation at MSMT17 scale (11,659 queries x 82,161 gallery, 2048-d) in bounded memory: our evaluation from
features, without and with k-reciprocal re-ranking, each in a fresh process, its seconds and peak RSS against the
4 GB goal; R1/mAP against torchreid's ranking (the Cython build that bench_evaluate.py compiles into .bench/).

Run with `.venv/bin/python benchmarks/bench_evaluate_msmt.py` (about 13 minutes on a shared 2-core machine; 6.2
GiB in the reference's step, under 3 GiB in ours) or `--quick` (the same steps on a tenth of the split). Each step
is a child process that prints one JSON line:
- plain: `evaluate_features` on cosine distances, block by block, as `evaluate` runs it;
- reference: the cosine distances, each row replaced by its ranks (bench_evaluate.py's `tie_free`: float32
  cosine distances tie at this size and every implementation orders ties its own way), as one dense 3.8 GB matrix
  ranked by our `evaluate_rank` and by torchreid's Cython ranking, 512 queries at a time (its per-query loop does
  not depend on the block; it argsorts the whole matrix it is given: 7.6 GB of int64 indices for the whole split):
  R1 must be identical, mAP equal to the Cython build's float32 sums. The 4 GB goal is ours, not this step's;
- rerank: `evaluate_features(..., rerank=True)` (k1=20, k2=6, lambda=0.3), the neighbour lists and encoding of all
  93,820 images, then Jaccard and original distance per block of queries. torchreid's dense `re_ranking` cannot run
  here: it holds (Q + G)^2 entries, 35 GB per float32 matrix, several at once;
- rerank-subset: on the first 1,500 queries and 10,500 gallery images, the blocks against the whole-matrix
  `re_ranking` (distances and R1/mAP).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import torch
from bench_evaluate import cython_ranking, tie_free

from canu_core import evaluation
from canu_core.cluster import re_ranking, re_ranking_rows
from canu_core.evaluation import distance_rows, evaluate_features, evaluate_rank, rank_distance_rows

NUM_QUERY, NUM_GALLERY, NUM_IDS, NUM_CAMS, DIM = 11659, 82161, 3060, 15, 2048
SUBSET_QUERY, SUBSET_GALLERY = 1500, 10500
NOISE = 3.5  # as bench_evaluate.py's market_like
REFERENCE_BLOCK = 512  # queries per call of the Cython reference
GOAL_GIB = 4.0  # process peak RSS of our evaluation, with and without re-ranking (not of the reference's step)
GOAL_STEPS = ("plain", "rerank")


def msmt_like(scale: float = 1.0, seed: int = 0):
    """Query/gallery features, pids and cameras shaped like MSMT17's test split (every id in both, no junk or
    distractors), written block by block into one float32 array each: no temporary as large as the features."""
    rng = np.random.default_rng(seed)
    num_query, num_gallery, num_ids = (round(scale * n) for n in (NUM_QUERY, NUM_GALLERY, NUM_IDS))

    def pids(count: int) -> np.ndarray:
        return rng.permutation(
            np.concatenate([np.arange(1, num_ids + 1), rng.integers(1, num_ids + 1, count - num_ids)])
        )

    q_pids, g_pids = pids(num_query), pids(num_gallery)
    q_camids, g_camids = rng.integers(0, NUM_CAMS, num_query), rng.integers(0, NUM_CAMS, num_gallery)
    centres = rng.standard_normal((num_ids + 1, DIM), dtype=np.float32)
    camera_bias = 0.5 * rng.standard_normal((NUM_CAMS, DIM), dtype=np.float32)

    def features(pids: np.ndarray, camids: np.ndarray) -> torch.Tensor:
        out = np.empty((len(pids), DIM), dtype=np.float32)
        for start in range(0, len(pids), 4096):
            block = out[start : start + 4096]
            rng.standard_normal(out=block, dtype=np.float32)
            block *= NOISE
            block += centres[pids[start : start + 4096]]
            block += camera_bias[camids[start : start + 4096]]
        return torch.from_numpy(out)

    return features(q_pids, q_camids), features(g_pids, g_camids), q_pids, g_pids, q_camids, g_camids


def metrics(result) -> dict:
    """R1 and mAP in percent, and the counts that R1 comes from."""
    first_matches = round(float(result.cmc[0]) * result.num_valid_queries)
    return {
        "R1": 100 * result.cmc[0],
        "mAP": 100 * result.mAP,
        "first_matches": first_matches,
        "valid": result.num_valid_queries,
    }


class PeakRss:
    """The seconds a `with` block takes and the largest RSS sampled in it (every 20 ms, from a thread): a peak per
    phase, where getrusage gives one for the whole process."""

    def __enter__(self) -> PeakRss:
        self.peak_gib, self.start, self.done = 0.0, time.perf_counter(), threading.Event()
        self.sampler = threading.Thread(target=self.sample, daemon=True)
        self.sampler.start()
        return self

    def sample(self) -> None:
        process = psutil.Process()
        while True:
            self.peak_gib = max(self.peak_gib, process.memory_info().rss / 2**30)
            if self.done.wait(0.02):
                return

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self.done.set()
        self.sampler.join()


def reference_ranking(distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids) -> dict:
    """torchreid's Cython ranking, REFERENCE_BLOCK queries at a time, combined: first-match counts and the APs of
    every valid query."""
    cython = cython_ranking()
    first_matches, average_precisions = 0, []
    for start in range(0, len(q_pids), REFERENCE_BLOCK):
        stop = start + REFERENCE_BLOCK
        cmc, aps, _ = cython.evaluate_cy(
            distmat[start:stop], q_pids[start:stop], g_pids, q_camids[start:stop], g_camids, 10
        )
        first_matches += round(float(cmc[0]) * len(aps))
        average_precisions.append(aps)
    aps = np.concatenate(average_precisions)
    mAP = 100 * float(np.mean(aps, dtype=np.float64))
    return {"R1": 100 * first_matches / len(aps), "mAP": mAP, "first_matches": first_matches, "valid": len(aps)}


def child(step: str, scale: float) -> None:
    """One step in this (fresh) process; prints a JSON line with its figures and the process's peak RSS."""
    query, gallery, q_pids, g_pids, q_camids, g_camids = msmt_like(scale)
    ids = (q_pids, g_pids, q_camids, g_camids)
    report = {
        "step": step,
        "load_before": os.getloadavg()[0],
        "rss_before_gib": psutil.Process().memory_info().rss / 2**30,
    }
    start = time.perf_counter()
    if step == "plain":
        report.update(metrics(evaluate_features(query, gallery, *ids)))
    elif step == "reference":
        rows, ranks = distance_rows(query, gallery), np.empty((len(query), len(gallery)), dtype=np.float32)
        for first in range(0, len(query), REFERENCE_BLOCK):
            ranks[first : first + REFERENCE_BLOCK] = tie_free(rows(first, first + REFERENCE_BLOCK).numpy())
        del query, gallery, rows
        report["distance_seconds"] = time.perf_counter() - start
        ours_start = time.perf_counter()
        report["ours"] = metrics(evaluate_rank(ranks, *ids))
        report["ours_seconds"] = time.perf_counter() - ours_start
        reference_start = time.perf_counter()
        report["torchreid_cython"] = reference_ranking(ranks, *ids)
        report["torchreid_seconds"] = time.perf_counter() - reference_start
    elif step == "rerank":
        with PeakRss() as prepare:  # neighbour lists and encoding of all images
            rows = re_ranking_rows(query, gallery)
        with PeakRss() as ranking:  # Jaccard and original distance per block of queries, ranked
            report.update(metrics(rank_distance_rows(rows, *ids)))
        report["prepare_seconds"], report["prepare_peak_gib"] = prepare.seconds, prepare.peak_gib
        report["ranking_seconds"], report["ranking_peak_gib"] = ranking.seconds, ranking.peak_gib
    elif step == "rerank-subset":
        num_query, num_gallery = round(scale * SUBSET_QUERY), round(scale * SUBSET_GALLERY)
        query, gallery = query[:num_query], gallery[:num_gallery]
        ids = (q_pids[:num_query], g_pids[:num_gallery], q_camids[:num_query], g_camids[:num_gallery])
        report["blocks"] = metrics(evaluate_features(query, gallery, *ids, rerank=True))
        whole = re_ranking(query, gallery).numpy()
        report["whole"] = metrics(evaluate_rank(whole, *ids))
        rows, block = re_ranking_rows(query, gallery), evaluation.BLOCK_ELEMENTS // num_gallery  # the ranking's
        difference = max(
            np.abs(rows(first, min(first + block, num_query)) - whole[first : first + block]).max()
            for first in range(0, num_query, block)
        )
        report["max_abs_difference"] = float(difference)
    report["seconds"] = time.perf_counter() - start
    report["load_after"] = os.getloadavg()[0]
    report["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(report))


def run_step(step: str, scale: float) -> dict:
    command = [sys.executable, __file__, "--child", step, "--scale", str(scale)]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode:
        sys.exit(f"step {step} failed:\n{finished.stderr}")
    return json.loads(finished.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the split (about a minute)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.scale)
        return
    scale = 0.1 if args.quick else 1.0
    query, gallery, *_ = msmt_like(scale)
    print(
        f"== MSMT17-shaped split: {len(query)} queries x {len(gallery)} gallery, {round(scale * NUM_IDS)} ids, "
        f"{NUM_CAMS} cameras, {DIM}-d ({(len(query) + len(gallery)) * DIM * 4 / 1e9:.2f} GB of float32 features); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; each step in a fresh process"
    )
    del query, gallery
    failures = []
    for step in ("plain", "reference", "rerank", "rerank-subset"):
        report = run_step(step, scale)
        over = step in GOAL_STEPS and report["peak_rss_gib"] > GOAL_GIB
        print(
            f"\n{step}: {report['seconds']:.1f} s, process peak RSS {report['peak_rss_gib']:.2f} GiB"
            f"{' OVER THE 4 GB GOAL' if over else ''} (RSS before the step: {report['rss_before_gib']:.2f} GiB: "
            f"interpreter, torch, features); load average {report['load_before']:.1f} -> {report['load_after']:.1f}"
        )
        failures += [f"{step}: peak RSS over {GOAL_GIB} GiB"] if over and scale == 1.0 else []
        if step in ("plain", "rerank"):
            print(f"  R1 {report['R1']:.4f} %, mAP {report['mAP']:.6f} %, valid queries {report['valid']}")
        if step == "rerank":
            print(
                f"  neighbour lists and encoding of all images: {report['prepare_seconds']:.1f} s, RSS up to "
                f"{report['prepare_peak_gib']:.2f} GiB; Jaccard, original distance and ranking per block of queries: "
                f"{report['ranking_seconds']:.1f} s, RSS up to {report['ranking_peak_gib']:.2f} GiB (sampled)"
            )
        if step == "reference":
            ours, theirs = report["ours"], report["torchreid_cython"]
            print(f"  rank-transformed distance matrix: {report['distance_seconds']:.1f} s")
            print(f"  ours: R1 {ours['R1']:.4f} %, mAP {ours['mAP']:.6f} % in {report['ours_seconds']:.1f} s")
            print(
                f"  torchreid Cython (fastreid build): R1 {theirs['R1']:.4f} %, mAP {theirs['mAP']:.6f} % in "
                f"{report['torchreid_seconds']:.1f} s"
            )
            print(f"  mAP difference {abs(ours['mAP'] - theirs['mAP']):.1e} (percent points; Cython sums in float32)")
            if (ours["first_matches"], ours["valid"]) != (theirs["first_matches"], theirs["valid"]) or abs(
                ours["mAP"] - theirs["mAP"]
            ) > 1e-4:
                failures.append("reference: R1/mAP differ from torchreid's")
        if step == "rerank-subset":
            blocks, whole = report["blocks"], report["whole"]
            print(
                f"  {round(scale * SUBSET_QUERY)} x {round(scale * SUBSET_GALLERY)}: blocks R1 {blocks['R1']:.4f} / "
                f"mAP {blocks['mAP']:.6f}, "
                f"whole-matrix re_ranking {whole['R1']:.4f} / {whole['mAP']:.6f}; max |difference| of the distances "
                f"{report['max_abs_difference']:.1e}"
            )
            if blocks != whole:
                failures.append("rerank-subset: blocks differ from the whole matrix")
    if failures:
        sys.exit("FAILED: " + "; ".join(failures))


if __name__ == "__main__":
    main()
