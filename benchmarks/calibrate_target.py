"""Search for a synthetic regime in which unsupervised adaptation works (docs/results.md "The study's regime").

A regime is the target world's camera style strength, the backbone (compact, or compact_ibn with instance
normalisation in its early blocks), the pretraining length and the adaptation schedule. For one regime this script
pretrains two source models (MMT's recipe, the target world's training images forwarded for BatchNorm), measures
direct transfer (model 1, as MMT evaluates it; model 1 as SSG's three-part model, as SSG evaluates it) and the first
clustering MMT would train on against the truth (pair precision, adjusted MI of pseudo-labels and of true ids with
the camera), then adapts with plain MMT and plain SSG on each seed and records each run's last-epoch mAP and wall
time. `--report` gathers every regime measured so far into docs/calibration/regimes.{md,csv}.

    .venv/bin/python benchmarks/calibrate_target.py --style 0.4 --arch compact_ibn --epochs 20 \
        --adapt-epochs 8 --adapt-iters 60 --seeds 0 1 --methods mmt ssg --threads 1
    .venv/bin/python benchmarks/calibrate_target.py --report

Worlds go to data/calibration/, runs to outputs/cal-<regime>-*, each regime's row to outputs/calibration/.
Everything resumes: a finished pretraining or adaptation is read back, an interrupted one continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import pandas as pd
import torch.nn.functional as F

from canu_core import (
    adapt,
    clustering_diagnostics,
    evaluate,
    ids_and_cameras,
    load_dataset,
    load_source_model,
    make_clustering,
    pretrain,
    train_set_features,
)
from canu_core.config import make_params
from canu_core.data import PRESETS, generate_world
from canu_core.engine import parts_model
from canu_core.reproducibility import set_threads
from canu_core.runs import RunFolder, atomic_write_text, resolve_path

CLUSTER_COLUMNS = [
    "num_clusters",
    "outlier_fraction",
    "pairwise_precision",
    "pairwise_recall",
    "ami_pseudo_camera",
    "ami_true_camera",
    "lost_ids",
]


def regime_parameters(args: argparse.Namespace) -> dict:
    """Pretraining scaled from the default 12 epochs (warm-up 2, decay at 9 and 11) to `args.epochs`."""
    return {
        "arch": args.arch,
        "epochs": args.epochs,
        "warmup_epochs": 2,
        "milestones": [round(args.epochs * 0.75), round(args.epochs * 11 / 12)],
        "adapt_epochs": args.adapt_epochs,
        "adapt_iters_per_epoch": args.adapt_iters,
        "adversary": "none",
        "eval_every_epoch": False,
        "seed": 1,
        "threads": args.threads,
    }


def measure(args: argparse.Namespace) -> dict:
    set_threads(args.threads)
    pretrain_name = f"cal-s{args.style}-{args.arch}-p{args.epochs}"
    regime = f"{pretrain_name}-a{args.adapt_epochs}x{args.adapt_iters}"
    params = make_params(regime_parameters(args))
    spec = dataclasses.replace(PRESETS["target"], style_strength=args.style)
    target = generate_world(spec, resolve_path("data") / "calibration" / f"target_style{args.style}")
    source = load_dataset(params.source, params.data_root)

    source_run = RunFolder.for_run(pretrain_name)
    started = time.perf_counter()
    pretrain(params, source, target, source_run)
    row = {
        "regime": regime,
        "style_strength": args.style,
        "arch": args.arch,
        "pretrain_epochs": args.epochs,
        "adapt_epochs": args.adapt_epochs,
        "adapt_iters": args.adapt_iters,
        "pretrain_minutes": (time.perf_counter() - started) / 60,
    }
    models = [load_source_model(source_run, k, params.source_checkpoint) for k in (1, 2)]
    row["source_mAP"] = float(source_run.read_history().query("model == 1")["source_mAP"].max())
    direct = evaluate(models[0], target, params.height, params.width, batch_size=params.eval_batch_size)
    direct_ssg = evaluate(
        parts_model(models[0]),
        target,
        params.height,
        params.width,
        batch_size=params.eval_batch_size,
        flip=params.ssg_flip_eval,
    )
    row |= {"direct_mAP": direct["mAP"], "direct_ssg_mAP": direct_ssg["mAP"]}
    features = F.normalize(sum(train_set_features(m, target.train, params) for m in models) / 2, dim=1)
    diagnostics = clustering_diagnostics(
        make_clustering(params, target.train)(features).labels, features, *ids_and_cameras(target.train), 0
    )
    row |= {k: diagnostics[k] for k in CLUSTER_COLUMNS}

    for method in args.methods:
        for seed in args.seeds:
            run = RunFolder.for_run(f"{regime}-{method}-none-seed{seed}")
            run_params = make_params({"method": method, "seed": seed}, base=params)
            started = time.perf_counter()
            adapt(run_params, target, run, source_run, source=source)
            row[f"{method}_mAP_seed{seed}"] = float(run.read_history()["target_mAP"].dropna().iloc[-1])
            row[f"{method}_minutes_seed{seed}"] = (time.perf_counter() - started) / 60
            save_row(row)
    save_row(row)
    return row


def save_row(row: dict) -> None:
    atomic_write_text(resolve_path("outputs") / "calibration" / f"{row['regime']}.json", json.dumps(row, indent=1))


def report() -> pd.DataFrame:
    """One line per regime: its knobs, direct transfer, the first clustering, and each method's mean mAP gain over
    its own direct transfer with the smallest per-seed gain."""
    rows = [json.loads(p.read_text()) for p in sorted((resolve_path("outputs") / "calibration").glob("*.json"))]
    out = []
    for row in rows:
        line = {k: row[k] for k in ("style_strength", "arch", "pretrain_epochs", "adapt_epochs", "adapt_iters")}
        line |= {
            "source mAP": f"{row['source_mAP']:.1f}",
            "direct mAP (MMT / SSG eval)": f"{row['direct_mAP']:.1f} / {row['direct_ssg_mAP']:.1f}",
            "pair precision": f"{row['pairwise_precision']:.2f}",
            "adj. MI pseudo / true": f"{row['ami_pseudo_camera']:.2f} / {row['ami_true_camera']:.2f}",
        }
        for method, direct in (("mmt", row["direct_mAP"]), ("ssg", row["direct_ssg_mAP"])):
            gains = [v - direct for k, v in row.items() if k.startswith(f"{method}_mAP_seed")]
            line[f"{method.upper()} gain (mean, min; seeds)"] = (
                f"{sum(gains) / len(gains):+.1f}, {min(gains):+.1f}; {len(gains)}" if gains else "-"
            )
        minutes = [v for k, v in row.items() if k.startswith("mmt_minutes")]
        line["pretrain / MMT run minutes"] = f"{row['pretrain_minutes']:.0f} / " + (
            f"{sum(minutes) / len(minutes):.1f}" if minutes else "-"
        )
        out.append(line)
    table = pd.DataFrame(out)
    folder = resolve_path("docs") / "calibration"
    atomic_write_text(folder / "regimes.csv", table.to_csv(index=False))
    atomic_write_text(folder / "regimes.md", table.to_markdown(index=False, disable_numparse=True) + "\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--style", type=float, default=0.4, help="the target world's camera style strength")
    parser.add_argument("--arch", default="compact", choices=["compact", "compact_ibn"])
    parser.add_argument("--epochs", type=int, default=12, help="pretraining epochs (60 iterations each)")
    parser.add_argument("--adapt-epochs", type=int, default=5)
    parser.add_argument("--adapt-iters", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=["mmt", "ssg"], choices=["mmt", "ssg"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only gather the regimes measured so far")
    args = parser.parse_args()
    if not args.report:
        measure(args)
    print(report().to_string(index=False))


if __name__ == "__main__":
    main()
