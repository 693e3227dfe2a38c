"""The CA-Jaccard arm (README.md here: the design and the three claims, stated before the runs): 5 MMT runs with
`jaccard: ca` on pair C (outputs/pretrain), then its tables against the committed Table IV runs of the same seeds
(../replicate/results.csv). Run from the repository root; finished runs are skipped (about 20 minutes for the
five, two at a time, on 2 cores):
  python docs/study/ca_jaccard/run.py
"""

from pathlib import Path

import pandas as pd

from canu_core.config import make_params, read_yaml
from canu_core.runs import RunFolder, atomic_write_text
from canu_core.study import (
    collect_histories,
    collect_results,
    execute_study,
    mean_std,
    paired_test,
    plan_study,
    save_table,
)

HERE = Path(__file__).parent
folder = RunFolder(HERE)  # tables in ./tables, as notebook 04 writes them
# notebook 04's own cell sets seed 1 (the pretraining seed of pretrain_run), as the committed Table IV ran
params = make_params(
    read_yaml("params/study.yaml")
    | {"studies": ["table_iv"], "methods": ["mmt"], "seed": 1, "jaccard": "ca", "run_name": "ca"}
)
runs = [run for run in plan_study(params, params.run_name) if run.adversary == "none"]
outcome = execute_study(params, runs)
print(outcome.to_string())
assert (outcome["after"] == "finished").all(), "a run failed: see its error above"

results, histories = collect_results(runs), collect_histories(runs)
atomic_write_text(HERE / "results.csv", results.to_csv(index=False))
atomic_write_text(HERE / "histories.csv", histories.to_csv(index=False))

committed = pd.read_csv(HERE.parent / "replicate" / "results.csv", keep_default_na=False, na_values=[""])
committed_histories = pd.read_csv(HERE.parent / "replicate" / "histories.csv", keep_default_na=False, na_values=[""])
mmt = committed[committed["method"].eq("mmt") & committed["variant"].isna()]
ARMS = {"MMT (DBSCAN)": mmt[mmt["adversary"].eq("none")], "MMT+Adv.": mmt[mmt["adversary"].eq("adv")]}
ARMS |= {"CANU-MMT": mmt[mmt["adversary"].eq("canu")], "MMT [CA-Jaccard]": results}
by_seed = {name: rows.set_index("seed").sort_index() for name, rows in ARMS.items()}
seeds = sorted(set.intersection(*(set(rows.index) for rows in by_seed.values())))
print(f"seeds with every arm: {seeds}")

table = pd.DataFrame(
    [
        {
            "Method": name,
            "mAP": mean_std(rows.loc[seeds, "target_mAP"]),
            "R1": mean_std(rows.loc[seeds, "target_R1"]),
            "adj. MI(pseudo; cam), last": f"{rows.loc[seeds, 'ami_pseudo_camera'].mean():.2f}",
            "clusters, last": f"{rows.loc[seeds, 'num_clusters'].mean():.0f}",
            "camera probe, last": f"{rows.loc[seeds, 'camera_probe_accuracy'].mean():.2f}",
            "seeds": len(seeds),
        }
        for name, rows in by_seed.items()
    ]
)
print(save_table(table, folder, "arms"))


def first_clustering(histories_of: pd.DataFrame, run_name: str) -> float:
    first = histories_of[histories_of["run_name"].eq(run_name) & histories_of["epoch"].eq(0)]
    return float(first["ami_pseudo_camera"].item())


first = {
    "MMT (DBSCAN)": first_clustering(committed_histories, "study-mmt-none-seed0"),
    "MMT [CA-Jaccard]": first_clustering(histories, "ca-mmt-none-seed0"),
}
print(f"first clustering, adj. MI(pseudo; camera): {first} (the same for every seed: one measurement each)")

CLAIMS = [  # claim, (arm, minus arm), metric, direction, margin, kind
    (
        "1. camera-aware pseudo-labels improve MMT",
        ("MMT [CA-Jaccard]", "MMT (DBSCAN)"),
        "target_mAP",
        1,
        1.0,
        "superiority",
    ),
    (
        "2. they carry less camera information (last clustering)",
        ("MMT [CA-Jaccard]", "MMT (DBSCAN)"),
        "ami_pseudo_camera",
        -1,
        0.02,
        "superiority",
    ),
    (
        "3. CANU-MMT is at least as good as MMT [CA-Jaccard]",
        ("CANU-MMT", "MMT [CA-Jaccard]"),
        "target_mAP",
        1,
        1.0,
        "non-inferiority",
    ),
    (
        "(no claim) MMT+Adv. against MMT [CA-Jaccard]",
        ("MMT+Adv.", "MMT [CA-Jaccard]"),
        "target_mAP",
        1,
        1.0,
        "superiority",
    ),
]
rows = []
for claim, (arm, other), metric, direction, margin, kind in CLAIMS:
    differences = (by_seed[arm].loc[seeds, metric] - by_seed[other].loc[seeds, metric]).to_numpy()
    test = paired_test(differences, direction=direction, margin=margin, kind=kind)
    digits = 1 if metric == "target_mAP" else 2
    rows.append(
        {
            "claim": claim,
            "comparison": f"{arm} - {other}",
            "metric": "mAP" if metric == "target_mAP" else "adj. MI (nats)",
            "difference": f"{test['mean']:+.{digits}f}",
            "95% CI": f"[{test['ci_low']:+.{digits}f}, {test['ci_high']:+.{digits}f}]",
            "seeds agreeing": test["agree"],
            "verdict": test["verdict"] if not claim.startswith("(no claim)") else "-",
        }
    )
print(save_table(pd.DataFrame(rows), folder, "claims"))
