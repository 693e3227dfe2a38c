"""How the synthetic target's camera style strength shapes the adaptation problem (README "Calibrating the target").

For each style strength: the target world with that strength (everything else the preset's), the direct transfer
of source model 1 of a pretraining run, and the first clustering MMT would train on (both source models' features,
DBSCAN by the rho rule), measured against the truth: pairwise precision / recall, MI(pseudo-labels; camera) beside
the true ids' MI, lost ids, the linear camera probe. Optionally a short MMT run on each (--adapt-epochs).

    .venv/bin/python benchmarks/calibrate_target.py --styles 0.5 0.4 0.3 --rho 0.004 [--adapt-epochs 5]

Worlds go to data/calibration/; adaptation runs to outputs/calibrate-style<s>-<adversary>/.
"""
from __future__ import annotations

import argparse
import dataclasses

import pandas as pd
import torch.nn.functional as F

from canu_core.config import make_params
from canu_core.data.synthetic import PRESETS, generate_world
from canu_core.engine.adaptation import clustering_diagnostics, make_clustering, train_set_features
from canu_core.engine.mmt import train_mmt
from canu_core.engine.pretrain import load_source_model
from canu_core.evaluate import evaluate
from canu_core.runs import RunFolder, resolve_path

COLUMNS = ["num_clusters", "outlier_fraction", "pairwise_precision", "pairwise_recall", "mi_pseudo_camera",
           "ami_pseudo_camera", "mi_true_camera", "lost_ids", "camera_probe_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", type=float, nargs="+", default=[0.5, 0.4, 0.3])
    parser.add_argument("--rho", type=float, default=0.004)
    parser.add_argument("--pretrain-run", default="pretrain")
    parser.add_argument("--adapt-epochs", type=int, default=0, help="> 0: also a short MMT run per world")
    parser.add_argument("--adversary", default="none", choices=["none", "adv", "canu"])
    args = parser.parse_args()

    params = make_params({"rho": args.rho, "adapt_epochs": max(args.adapt_epochs, 1), "adversary": args.adversary})
    source_run = RunFolder.for_run(args.pretrain_run)
    models = [load_source_model(source_run, k, params.source_checkpoint) for k in (1, 2)]
    rows = []
    for style in args.styles:
        spec = dataclasses.replace(PRESETS["target"], style_strength=style)
        world = generate_world(spec, resolve_path("data") / "calibration" / f"target_style{style}")
        transfer = evaluate(models[0], world, params.height, params.width, batch_size=params.eval_batch_size)
        features = F.normalize(sum(train_set_features(m, world.train, params) for m in models) / 2, dim=1)
        pseudo = make_clustering(params)(features)
        row = {"style_strength": style, "direct_mAP": transfer["mAP"], "direct_R1": transfer["R1"],
               **{k: v for k, v in clustering_diagnostics(pseudo.labels, features, world.train, 0).items()
                  if k in COLUMNS}}
        if args.adapt_epochs > 0:
            run = RunFolder.for_run(f"calibrate-style{style}-{args.adversary}")
            train_mmt(params, world, run, source_run)
            history = run.read_history()
            row["mmt_mAP_per_epoch"] = " ".join(f"{v:.1f}" for v in history["target_mAP"])
        rows.append(row)
        print(pd.DataFrame(rows).round(3).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
