"""The pseudo-label step (k-reciprocal Jaccard distance, eps by the rho rule, DBSCAN) at Market-1501 and MSMT17
train sizes: our sparse DBSCANClustering, both variants ("mmt" and "spcl"), against the dense SpCL reference
(benchmarks/dense_reference.py); and with `--scaling`, from 12,936 to 400,000 images, the exact neighbour search
against the approximate one ("ivf", several settings): time, peak memory, recall of the exact neighbour lists and
agreement of the pseudo-labels with the exact ones, and a figure of time and memory against N.

Run with `.venv/bin/python benchmarks/bench_cluster.py` (about 3 minutes on a quiet machine, 3 GiB at most;
`--quick`: small sizes; `--scaling`: see `scaling`, about an hour). All run on the same features, each in its own
fresh process so that each peak RSS is its own (that includes the interpreter, torch and the features). Features:
2048-d, L2-normalised, 80% of them around identity centres (at least 4 images per identity), the rest random
directions (noise). Our "spcl" labels must equal the reference's (numbered the same way); "mmt" is another algorithm
(lists one point longer, row-scaled weights): its labels are only compared (adjusted Rand index). Timings move with
the machine's load (printed): compare within one run."""

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
from sklearn.metrics.cluster import pair_confusion_matrix

from canu_core.cluster import ivf_cell_count, relabel_by_first_member

DIM = 2048
MARKET = {"name": "Market-1501 train", "num_points": 12936, "num_ids": 751}
MSMT = {"name": "MSMT17 train", "num_points": 32621, "num_ids": 1041}
QUICK_MARKET = {"name": "quick", "num_points": 3000, "num_ids": 180}
QUICK_MSMT = {"name": "quick, larger", "num_points": 6000, "num_ids": 360}
VARIANTS = ("mmt", "spcl")
# --scaling: sizes (images, identities: about 31 images an identity, as MSMT17's training set), the approximate
# settings tried (cells 0: automatic), the sizes where the exact search runs (at 400,000 it would take about half
# an hour: 16x the flops of N = 100,000), the points whose exact lists measure recall where it does not.
SCALING_SIZES = {12936: 751, 32621: 1041, 100000: 3200, 400000: 12800}
IVF_SETTINGS = ({"lists": 0, "probes": 8}, {"lists": 0, "probes": 16}, {"lists": 0, "probes": 32})
EXACT_UP_TO = 100000
# The rho rule takes the smallest rho share of all pairs: rho x (N - 1) / 2 pairs per image, 26 at MSMT17's size with
# the paper's 1.6e-3. With a fixed rho that share outgrows the same-identity pairs as N grows (at N = 100,000 and
# 1.6e-3, eps reached 0.86 and the exact step merged 3,200 identities into 1,596 clusters), so beyond MSMT17's size
# the benchmark keeps 26 pairs per image.
PAPER_RHO = 1.6e-3
RECALL_SAMPLE = 2000
FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "pseudo_label_scaling.png"


def clustered_features(num_points: int, num_ids: int, seed: int = 0, clustered_share: float = 0.8) -> np.ndarray:
    """[num_points, DIM] float32 unit vectors: identity centre + noise (cosine ~0.6 between two images of one id,
    ~0 across ids), images shuffled; the points beyond clustered_share are random directions."""
    return features_and_identities(num_points, num_ids, seed, clustered_share)[0]


def features_and_identities(
    num_points: int, num_ids: int, seed: int = 0, clustered_share: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """`clustered_features` and each point's identity (-1: a random direction, no identity)."""
    rng = np.random.default_rng(seed)
    num_clustered = int(clustered_share * num_points)
    per_id = 4 + rng.multinomial(num_clustered - 4 * num_ids, np.full(num_ids, 1.0 / num_ids))
    centres = rng.standard_normal((num_ids, DIM), dtype=np.float32)
    points = rng.standard_normal((num_points, DIM), dtype=np.float32)
    points[: per_id.sum()] = 0.8 * points[: per_id.sum()] + np.repeat(centres, per_id, axis=0)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    identities = np.concatenate([np.repeat(np.arange(num_ids), per_id), np.full(num_points - per_id.sum(), -1)])
    order = rng.permutation(num_points)
    return points[order], identities[order]


def child(implementation: str, features_path: str, labels_path: str) -> None:
    """Runs in a fresh process: one pseudo-label step, labels saved (and, for ours, the neighbour lists it searched,
    as <labels>.neighbours.npy), one JSON line printed. `implementation`: "reference", a variant, or a JSON object
    {"variant": ..., "search": "exact" or "ivf", "lists": ..., "probes": ..., "rho": ...}."""
    progress = sys.stderr.isatty()
    if implementation == "reference":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from dense_reference import pseudo_labels

        def step(features):
            return pseudo_labels(features, progress=progress)
    else:
        from canu_core.cluster import DBSCANClustering, NeighbourSearch, jaccard

        spec = json.loads(implementation) if implementation.startswith("{") else {"variant": implementation}
        search = NeighbourSearch(spec.get("search", "exact"), spec.get("lists", 0), spec.get("probes", 8))
        _record_neighbour_lists(jaccard, Path(labels_path).with_suffix(".neighbours.npy"))

        def step(features):
            clustering = DBSCANClustering(
                jaccard=spec["variant"], rho=spec.get("rho", PAPER_RHO), search=search, progress=progress
            )
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


def _record_neighbour_lists(jaccard_module, path: Path) -> None:
    """Save the lists each search function returns (for the recall column): the benchmark wraps the module's two
    search functions, which upper_jaccard_distance looks up at each call."""
    for name in ("nearest_neighbour_lists", "ivf_neighbour_lists"):
        search = getattr(jaccard_module, name)

        def recorded(*args, _search=search, **kwargs):
            neighbours = _search(*args, **kwargs)
            np.save(path, neighbours.indices)
            return neighbours

        setattr(jaccard_module, name, recorded)


def run_child(
    implementation: str, features_path: Path, folder: Path, name: str | None = None
) -> tuple[dict, np.ndarray]:
    labels_path = folder / f"{name or implementation}_labels.npy"
    command = [sys.executable, __file__, "--child", implementation, str(features_path), str(labels_path)]
    result = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)  # progress bars: stderr
    report = json.loads(result.stdout.splitlines()[-1])
    labels = np.load(labels_path)
    report["clusters"], report["outliers"] = int(labels.max()) + 1, int((labels < 0).sum())
    print(
        f"  {name or implementation:9s}: {report['seconds']:6.1f} s, peak RSS {report['peak_rss_mib'] / 1024:5.2f} GiB "
        f"(before the step: {report['rss_before_mib'] / 1024:.2f} GiB), eps {report['eps']:.6f}, "
        f"{report['clusters']} clusters, {report['outliers']} outliers, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return report, labels


def write_features(size: dict, folder: Path) -> Path:
    """The features at `size`, saved; their identities beside them (identities_<N>.npy)."""
    path = folder / f"features_{size['num_points']}.npy"
    features, identities = features_and_identities(size["num_points"], size["num_ids"])
    np.save(path, features)
    np.save(folder / f"identities_{size['num_points']}.npy", identities)
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


def scaling(sizes: list[int], folder: Path) -> list[dict]:
    """At each size: the exact search (up to EXACT_UP_TO images) and every IVF_SETTINGS, variant "mmt", each in a
    fresh process; recall of the exact lists (the k1 + 1 = 21 nearest, as sets: over every point where the exact
    step ran, else over RECALL_SAMPLE points whose exact lists come from one matrix product), and where the exact
    step ran, the agreement of the pseudo-labels with its labels: adjusted Rand index and pair F1, each outlier
    its own cluster (an outlier pairs with nothing), over all points and over the points with an identity (the
    random directions have no true neighbours: the exact search finds them at random, an approximate one among
    the points it reads, which changes whether they join a cluster); and the share of random directions left
    outliers."""
    rows = []
    for num_points in sizes:
        size = {"name": f"N={num_points}", "num_points": num_points, "num_ids": SCALING_SIZES[num_points]}
        print(f"== scaling: N={num_points}, {size['num_ids']} ids, load average {os.getloadavg()[0]:.1f}", flush=True)
        features_path = write_features(size, folder)
        identities = np.load(folder / f"identities_{num_points}.npy")
        rho = scaled_rho(num_points)
        runs = [{"variant": "mmt", "search": "exact", "rho": rho}] if num_points <= EXACT_UP_TO else []
        runs += [{"variant": "mmt", "search": "ivf", "rho": rho, **setting} for setting in IVF_SETTINGS]
        exact_labels = exact_lists = sample = None
        for spec in runs:
            name = spec["search"] + (f"-{spec['lists']}-{spec['probes']}" if spec["search"] == "ivf" else "")
            report, labels = run_child(json.dumps(spec), features_path, folder, f"{name}-{num_points}")
            lists = np.load(folder / f"{name}-{num_points}_labels.neighbours.npy")
            if spec["search"] == "exact":
                exact_labels, exact_lists = labels, lists
            elif exact_lists is None:
                sample = np.random.default_rng(0).choice(num_points, RECALL_SAMPLE, replace=False)
                exact_lists = exact_neighbour_sample(np.load(features_path), sample, lists.shape[1])
            rows_checked = sample if sample is not None else np.arange(num_points)
            row = {"N": num_points, "search": name, **spec, **report, "load": os.getloadavg()[0]}
            row["recall"] = list_recall(lists[rows_checked], exact_lists)
            row["recall_on"] = "all points" if sample is None else f"{RECALL_SAMPLE} points"
            identified = identities >= 0
            row["noise_outliers"] = float((labels[~identified] < 0).mean())
            if exact_labels is not None:
                row["ari"], row["pair_f1"] = label_agreement(exact_labels, labels)
                row["ari_identified"], _ = label_agreement(exact_labels[identified], labels[identified])
            rows.append(row)
            print(
                f"    recall {row['recall']:.4f} ({row['recall_on']}), random directions left outliers "
                f"{row['noise_outliers']:.3f}"
                + (
                    f", ARI {row['ari']:.4f}, pair F1 {row['pair_f1']:.4f}, ARI on points with an identity "
                    f"{row['ari_identified']:.4f}"
                    if "ari" in row
                    else ""
                ),
                flush=True,
            )
    return rows


def scaled_rho(num_points: int) -> float:
    """The paper's rho up to MSMT17's training size, beyond it the rho that takes as many pairs per image."""
    return PAPER_RHO * min(1.0, MSMT["num_points"] / num_points)


def exact_neighbour_sample(features: np.ndarray, sample: np.ndarray, k: int) -> np.ndarray:
    """The exact k most similar points of each sampled point (features are unit vectors): [len(sample), k]."""
    unit = torch.nn.functional.normalize(torch.from_numpy(features), dim=1)
    return (unit[sample] @ unit.T).topk(k, dim=1).indices.numpy()


def list_recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact list found in the other list (as sets)."""
    return float(np.mean([len(np.intersect1d(a, b)) / len(b) for a, b in zip(found, exact)]))


def label_agreement(reference: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(adjusted Rand index, pair F1) of `labels` against `reference`, each outlier (-1) a cluster of its own."""
    reference, labels = _outliers_alone(reference), _outliers_alone(labels)
    (_, false_pairs), (missed_pairs, true_pairs) = pair_confusion_matrix(reference, labels)
    pair_f1 = 2 * true_pairs / (2 * true_pairs + false_pairs + missed_pairs) if true_pairs else 0.0
    return float(adjusted_rand_score(reference, labels)), float(pair_f1)


def _outliers_alone(labels: np.ndarray) -> np.ndarray:
    labels = labels.copy()
    outliers = labels < 0
    labels[outliers] = labels.max() + 1 + np.arange(outliers.sum())
    return labels


def scaling_table(rows: list[dict]) -> str:
    lines = [
        "| N | rho | search | cells | probes | seconds | peak RSS (GiB) | recall of exact lists | ARI | pair F1 "
        "| ARI, points with an identity | random directions left outliers | clusters | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ivf = row["search"] != "exact"
        cells = (f"{ivf_cell_count(row['N'])} (auto)" if row["lists"] == 0 else row["lists"]) if ivf else ""
        agreement = (
            f"{row['ari']:.4f} | {row['pair_f1']:.4f} | {row['ari_identified']:.4f}" if "ari" in row else "- | - | -"
        )
        lines.append(
            f"| {row['N']:,} | {row['rho']:.2g} | {'ivf' if ivf else 'exact'} | {cells} | "
            f"{row['probes'] if ivf else ''} | "
            f"{row['seconds']:.1f} | {row['peak_rss_mib'] / 1024:.2f} | {row['recall']:.4f} ({row['recall_on']}) | "
            f"{agreement} | {row['noise_outliers']:.3f} | {row['clusters']} | {row['load']:.1f} |"
        )
    return "\n".join(lines)


def scaling_figure(rows: list[dict], path: Path) -> None:
    """Seconds and peak RSS against N (log-log), one line per search setting, the goals marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def setting(row: dict) -> str:
        return "exact" if row["search"] == "exact" else f"ivf, {row['probes']} probes"

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for name in dict.fromkeys(setting(row) for row in rows):
        chosen = [row for row in rows if setting(row) == name]
        sizes = [row["N"] for row in chosen]
        axes[0].plot(sizes, [row["seconds"] for row in chosen], marker="o", label=name)
        axes[1].plot(sizes, [row["peak_rss_mib"] / 1024 for row in chosen], marker="o", label=name)
    sizes = sorted({row["N"] for row in rows})
    for axis, goals, label in ((axes[0], (120, 900), "seconds"), (axes[1], (4, 16), "peak RSS (GiB)")):
        axis.scatter([100000, 400000], goals, marker="_", s=400, color="black", label="goal")
        axis.set(xscale="log", yscale="log", xlabel="images N", ylabel=label)
        axis.set_xticks(sizes, [f"{size:,}" for size in sizes], minor=False)
        axis.set_xticks([], minor=True)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle("The pseudo-label step (MMT's Jaccard, rho rule, DBSCAN) on 2 CPU cores")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (N=3000 compared, N=6000 alone)")
    parser.add_argument(
        "--scaling",
        nargs="*",
        type=int,
        metavar="N",
        help=f"exact against ivf at these sizes (default: all of {list(SCALING_SIZES)})",
    )
    parser.add_argument("--redraw", action="store_true", help="the table and figure again from the last --scaling rows")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.redraw:
        rows = json.loads(FIGURE.with_suffix(".json").read_text())
        print(scaling_table(rows))
        scaling_figure(rows, FIGURE)
        return
    if args.scaling is not None:
        sizes = args.scaling or list(SCALING_SIZES)
        unknown = sorted(set(sizes) - set(SCALING_SIZES))
        if unknown:
            sys.exit(f"--scaling sizes must be among {list(SCALING_SIZES)}, got {unknown}")
        with tempfile.TemporaryDirectory(
            prefix="bench_cluster_", dir=Path(__file__).resolve().parent.parent / ".bench"
        ) as folder:
            rows = scaling(sizes, Path(folder))
        print(scaling_table(rows))
        results = FIGURE.with_suffix(".json")
        results.write_text(json.dumps(rows, indent=1))
        print(f"rows: {results}")
        scaling_figure(rows, FIGURE)
        return
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as folder:
        identical = compare(QUICK_MARKET if args.quick else MARKET, Path(folder))
        alone(QUICK_MSMT if args.quick else MSMT, Path(folder))
    if not identical:
        sys.exit("MISMATCH: the spcl labels differ from the reference's")


if __name__ == "__main__":
    main()
