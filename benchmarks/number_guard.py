"""The redesign guard: a refactoring changes no number.

    python benchmarks/number_guard.py record guard/         # before: the runs' history.csv and metrics.json
    python benchmarks/number_guard.py check guard/          # after: the same runs again, compared value by value
    python benchmarks/number_guard.py check guard/ --smoke  # the smoke runs only (about 2 minutes)
    python benchmarks/number_guard.py check guard/ --only default-mmt-canu

The runs: notebook 01's smoke pretraining, notebook 03's smoke runs of MMT and SSG with each adversary (none, +Adv.,
CANU), and one default notebook 03 run (MMT with CANU, from the default pretraining of outputs/pretrain, which it
copies). Each is a `python -m canu_core run` job with one thread, in a fresh outputs folder. The check compares every
cell of every history.csv and every value of every metrics.json as text, after renaming the columns and keys in
RENAMED (a concept given its one name is not a changed number); it prints each difference and exits 1 on any.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["-f", "params/smoke.yaml", "-p", "threads", "1"]
RUNS = {
    "smoke-pretrain": ["01_pretrain", *SMOKE, "-p", "run_name", "smoke"],
    **{
        f"smoke-{method}-{adversary}": [
            "03_train",
            *SMOKE,
            *("-p", "run_name", f"smoke-{method}-{adversary}", "-p", "method", method, "-p", "adversary", adversary),
        ]
        for method in ("mmt", "ssg")
        for adversary in ("none", "adv", "canu")
    },
    "default-mmt-canu": ["03_train", "-p", "threads", "1", "-p", "run_name", "default-mmt-canu"],
}
# Old name -> new name, for columns of history.csv and keys of metrics.json renamed by the redesign.
RENAMED: dict[str, str] = {"best_oracle": "best_by_target_labels", "camera_probe_acc": "camera_probe_accuracy"}
RECORDED = ("history.csv", "metrics.json")


def run_all(outputs: Path, names: list[str]) -> None:
    """Each run of `names` as a job of its own writing into `outputs` (the default run reads the default
    pretraining, copied from this checkout's outputs/pretrain)."""
    if "default-mmt-canu" in names:
        shutil.copytree(ROOT / "outputs" / "pretrain", outputs / "pretrain", dirs_exist_ok=True)
    environment = os.environ | {"CANU_OUTPUTS": str(outputs), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in names:
        print(f"[guard] {name}", flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "canu_core", "run", *RUNS[name]], cwd=ROOT, env=environment, capture_output=True
        )
        if done.returncode:
            raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def recorded_run_folder(name: str) -> str:
    return {"smoke-pretrain": "smoke"}.get(name, name)


def record(folder: Path, names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as outputs:
        run_all(Path(outputs), names)
        for name in names:
            (folder / name).mkdir(parents=True, exist_ok=True)
            for file in RECORDED:
                shutil.copy(Path(outputs) / recorded_run_folder(name) / file, folder / name / file)


def renamed_history(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False).rename(columns=RENAMED)


def renamed_metrics(value):
    if isinstance(value, dict):
        return {RENAMED.get(key, key): renamed_metrics(item) for key, item in value.items()}
    if isinstance(value, list):
        return [renamed_metrics(item) for item in value]
    return value


def differences(recorded: Path, fresh: Path) -> list[str]:
    """Every cell or value of `fresh`'s run that is not `recorded`'s, as lines."""
    found = []
    before, after = renamed_history(recorded / "history.csv"), renamed_history(fresh / "history.csv")
    if list(before.columns) != list(after.columns) or len(before) != len(after):
        found.append(
            f"history.csv: columns or rows differ: {list(before.columns)} x {len(before)} rows against "
            f"{list(after.columns)} x {len(after)} rows"
        )
    else:
        for column in before.columns:
            for row, (old, new) in enumerate(zip(before[column], after[column])):
                if old != new:
                    found.append(f"history.csv row {row} {column}: {old} -> {new}")
    old_metrics = renamed_metrics(json.loads((recorded / "metrics.json").read_text()))
    new_metrics = json.loads((fresh / "metrics.json").read_text())
    if old_metrics != new_metrics:
        found.append(
            f"metrics.json: {json.dumps(old_metrics, sort_keys=True)} -> {json.dumps(new_metrics, sort_keys=True)}"
        )
    return found


def check(folder: Path, names: list[str]) -> int:
    with tempfile.TemporaryDirectory() as outputs:
        run_all(Path(outputs), names)
        found = {name: differences(folder / name, Path(outputs) / recorded_run_folder(name)) for name in names}
    for name, lines in found.items():
        print(f"{name}: {'identical' if not lines else f'{len(lines)} differences'}")
        for line in lines[:20]:
            print(f"    {line}")
    return 1 if any(found.values()) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("record", "check"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--smoke", action="store_true", help="the smoke runs only, not the default run")
    parser.add_argument("--only", choices=list(RUNS), action="append", help="these runs only (repeatable)")
    args = parser.parse_args()
    names = args.only or [name for name in RUNS if not (args.smoke and name.startswith("default"))]
    if args.action == "record":
        record(args.folder, names)
        return 0
    return check(args.folder, names)


if __name__ == "__main__":
    sys.exit(main())
