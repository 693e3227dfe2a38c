"""The length study's tables, claims and figure from its run folders (README.md here: the design and the three
claims, stated before the runs). Run from the repository root with the run folders in outputs/ (notebook 04 with
params/length.yaml makes them), at any point of the study: unfinished runs are left out, and a seed counts once all
three arms of it have finished.
  python docs/study/length/build_tables.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

from canu_core.config import make_params, read_yaml
from canu_core.runs import RunFolder, atomic_write_text
from canu_core.study import collect_histories, paired_test, plan_study, save_table
from canu_core.viz.study import plot_metric_per_epoch

HERE = Path(__file__).parent
folder = RunFolder(HERE)  # tables in ./tables, figures in ./figures, as notebook 04 writes them
params = make_params(read_yaml("params/length.yaml"))
ARMS = {"none": "MMT (DBSCAN)", "adv": "MMT+Adv.", "canu": "CANU-MMT"}
SHORT, LONG = 5, 11  # history epochs count from 0: the sixth and the twelfth
MARGIN = 1.0  # mAP, the claims' margin

histories = collect_histories(plan_study(params, params.run_name))
atomic_write_text(HERE / "histories.csv", histories.to_csv(index=False))
at = histories[histories["epoch"].isin([SHORT, LONG])].pivot_table(
    index="seed", columns=["adversary", "epoch"], values="target_mAP"
)
at = at.dropna()  # seeds with every arm at both epochs
seeds = list(at.index)
print(f"{histories['run_name'].nunique()} of 9 runs finished; seeds with all three arms: {seeds}")


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its Student-t 95% interval over the seeds (the claims tables' test, study.paired_test)."""
    test = paired_test(values, direction=1, margin=MARGIN)
    return test["mean"], test["ci_low"], test["ci_high"]


per_seed = pd.DataFrame(
    [
        {
            "seed": seed,
            "Method": name,
            "mAP at epoch 6": f"{at.loc[seed, (arm, SHORT)]:.1f}",
            "mAP at epoch 12": f"{at.loc[seed, (arm, LONG)]:.1f}",
            "gain": f"{at.loc[seed, (arm, LONG)] - at.loc[seed, (arm, SHORT)]:+.1f}",
        }
        for seed in seeds
        for arm, name in ARMS.items()
    ]
)
print(save_table(per_seed, folder, "per_seed"))


def order(seed: int, epoch: int) -> list[str]:
    return sorted(ARMS, key=lambda arm: -at.loc[seed, (arm, epoch)])


rows = []
kept = [seed for seed in seeds if order(seed, SHORT) == order(seed, LONG)]
rows.append(
    {
        "claim": "1. the arms' mAP order at epoch 12 is their order at epoch 6, in every seed",
        "measured": f"order kept in {len(kept)}/{len(seeds)} seeds",
        "95% CI": "-",
        "verdict": "supported" if seeds and len(kept) == len(seeds) else "not supported" if seeds else "not measured",
    }
)
gap = {epoch: at.xs("canu", axis=1, level=0)[epoch] - at.xs("adv", axis=1, level=0)[epoch] for epoch in (SHORT, LONG)}
mean, low, high = interval((gap[LONG] - gap[SHORT]).to_numpy())
# read as stated: within 1 mAP when the interval lies inside [-1, +1]; moved when it lies wholly outside
within = (
    "supported"
    if -MARGIN < low and high < MARGIN
    else "not supported"
    if low > MARGIN or high < -MARGIN
    else "inconclusive"
)
rows.append(
    {
        "claim": "2. CANU-MMT - MMT+Adv. at epoch 12 lies within 1 mAP of its value at epoch 6",
        "measured": f"{mean:+.1f} (at 6: {gap[SHORT].mean():+.1f}, at 12: {gap[LONG].mean():+.1f})",
        "95% CI": f"[{low:+.1f}, {high:+.1f}]",
        "verdict": within if len(seeds) > 1 else "not measured",
    }
)
for arm, name in ARMS.items():
    gains = (at[(arm, LONG)] - at[(arm, SHORT)]).to_numpy()
    mean, low, high = interval(gains)
    # read as: the arm's gain is at least 1 mAP when the interval lies above 1; not when it lies below 1
    verdict = "supported" if low >= MARGIN else "not supported" if high < MARGIN else "inconclusive"
    rows.append(
        {
            "claim": f"3. {name} still gains at least 1 mAP between epochs 6 and 12",
            "measured": f"{mean:+.1f} (seeds: {', '.join(f'{g:+.1f}' for g in gains)})",
            "95% CI": f"[{low:+.1f}, {high:+.1f}]",
            "verdict": verdict if len(seeds) > 1 else "not measured",
        }
    )
print(save_table(pd.DataFrame(rows), folder, "claims"))
plot_metric_per_epoch(
    histories[histories["seed"].isin(seeds)],
    "target_mAP",
    path=folder.figure_path("map_per_epoch.png"),
    title=f"MMT's three arms for 12 epochs, one pair of source models, seeds {seeds}",
)
