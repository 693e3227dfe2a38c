"""Do the adversaries remove camera information, or only fool their discriminator? A screen of the discriminator's
settings for MMT+Adv. on the default world, judged by a fresh linear camera probe (README.md beside this file).

Runs notebook 03's training (`python -m canu_core run 03_train`, no figures) for each setting, two at a time with
one thread each, from the source models of `outputs/pretrain` (notebook 01's defaults), then writes results.csv and
the table in results.md from the run folders alone. A finished run is opened again and has nothing left to train.

    .venv/bin/python docs/study/adversary/screen.py
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
# name -> parameters of notebook 03 (MMT at the paper's mu 0.1 unless given, seed 0, the study's schedule)
SETTINGS = {
    "screen-mmt-none": {"adversary": "none"},
    "screen-mmt-adv-steps1-lr0.00035": {"adversary": "adv"},
    "screen-mmt-adv-steps5-lr0.00035": {"adversary": "adv", "disc_steps": 5},
    "screen-mmt-adv-steps1-lr0.0035": {"adversary": "adv", "disc_lr": 0.0035},
    "screen-mmt-adv-steps5-lr0.0035": {"adversary": "adv", "disc_steps": 5, "disc_lr": 0.0035},
    # added after the first five had run: CANU at the current setting and at the one that made +Adv.'s probe fall
    "screen-mmt-canu-steps1-lr0.00035": {"adversary": "canu"},
    "screen-mmt-canu-steps1-lr0.0035": {"adversary": "canu", "disc_lr": 0.0035},
    # added after the MMT rows: SSG (the paper's mu 0.05 for CANU-SSG), whose adversary barely acted in the study
    "screen-ssg-none": {"method": "ssg", "mu": 0.05, "adversary": "none"},
    "screen-ssg-adv-steps1-lr0.00035": {"method": "ssg", "mu": 0.05, "adversary": "adv"},
    "screen-ssg-adv-steps1-lr0.0035": {"method": "ssg", "mu": 0.05, "adversary": "adv", "disc_lr": 0.0035},
}
COMMON = {"method": "mmt", "mu": 0.1, "seed": 0, "threads": 1, "pretrain_run": "pretrain", "umap_figures": False}


def run(name: str, parameters: dict) -> str:
    flags = [str(item) for key, value in {**COMMON, **parameters}.items() for item in ("-p", key, value)]
    command = [sys.executable, "-m", "canu_core", "run", "03_train", "-p", "run_name", name, *flags]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    return f"{name}: exit {done.returncode} {done.stderr.strip().splitlines()[-1] if done.returncode else ''}"


def collect() -> pd.DataFrame:
    rows = []
    for name, parameters in SETTINGS.items():
        history = pd.read_csv(ROOT / "outputs" / name / "history.csv").sort_values("epoch")
        last = history.iloc[-1]
        discriminators = history.filter(regex=r"^disc_acc_").iloc[-1]
        rows.append(
            {
                "run": name,
                "method": parameters.get("method", COMMON["method"]),
                "adversary": parameters["adversary"],
                "disc_steps": parameters.get("disc_steps", 1),
                "disc_lr": str(parameters.get("disc_lr", 0.00035)),
                "target_mAP": last["target_mAP"],
                "target_R1": last["target_R1"],
                "probe (last epoch)": last["camera_probe_accuracy"],
                "probe (lowest epoch)": history["camera_probe_accuracy"].min(),
                "discriminators (last epoch)": discriminators.mean() if len(discriminators) else float("nan"),
                "identity alone": last["camera_identity_alone"],
                "chance": last["camera_probe_chance"],
            }
        )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    with ThreadPoolExecutor(2) as pool:
        for line in pool.map(lambda item: run(*item), SETTINGS.items()):
            print(line, flush=True)
    results = collect()
    results.to_csv(HERE / "results.csv", index=False)
    (HERE / "results.md").write_text(results.round(3).to_markdown(index=False) + "\n")
    print(results.round(3).to_string(index=False))
