"""Table IV's target-supervised upper bound on pair C: the 10 runs of the oracle study's "supervised" variant (SSG
and MMT without adversary, trained on the target's true identities instead of pseudo-labels, seeds 0-4), made from
`outputs/pretrain` (notebook 01's seed 1 on this machine: pair C, bit for bit), beside the 40 committed runs of this
folder; and one committed Table IV run (SSG, seed 0) made again, which must equal its row to the last digit (else
the current code does not give pair C's numbers and the row would not belong beside them).

Stated before the runs (committed with this script): each upper bound lies above every arm of its method (a row
that does not would mean the supervised recipe is broken, not a finding); what the row adds is the share of the way
from direct transfer to it that each arm covers (`study.gap_closed`), a description, with no verdict. Run from the
repository root (the runs skip what is finished; about 35 minutes for the 11 runs, two at a time, on 2 cores):
  python docs/study/replicate/upper_bound.py
"""

from pathlib import Path

import pandas as pd

from canu_core.config import make_params, read_yaml
from canu_core.runs import RunFolder, atomic_write_text
from canu_core.study import (
    collect_histories,
    collect_results,
    execute_study,
    gap_closed,
    plan_study,
    save_table,
    variant_table,
)

HERE = Path(__file__).parent
# notebook 04's own cell sets seed 1 (the pretraining seed of pretrain_run), as the committed study ran
params = make_params(read_yaml("params/study.yaml") | {"studies": ["table_iv", "oracle"], "seed": 1})
planned = plan_study(params, params.run_name)
upper_bound = [run for run in planned if run.variant == "supervised"]
again = [run for run in planned if run.name == "study-ssg-none-seed0"]
outcome = execute_study(params, upper_bound + again)
print(outcome.to_string())
assert (outcome["after"] == "finished").all(), "a run failed: see its error above"

committed = pd.read_csv(HERE / "results.csv", keep_default_na=False, na_values=[""])
remade = collect_results(again).set_index("run_name").loc["study-ssg-none-seed0"]
before = committed.set_index("run_name").loc["study-ssg-none-seed0"]
numbers = [c for c in committed.select_dtypes("number").columns if c in remade.index and not pd.isna(before[c])]
differ = {c: (before[c], remade[c]) for c in numbers if before[c] != remade[c]}
print("the committed SSG seed-0 run made again:", "equal to the last digit" if not differ else f"differs: {differ}")

folder = HERE / "upper_bound"
results, histories = collect_results(upper_bound), collect_histories(upper_bound)
atomic_write_text(folder / "results.csv", results.to_csv(index=False))
atomic_write_text(folder / "histories.csv", histories.to_csv(index=False))

everything = pd.concat([committed, results], ignore_index=True)
everything["variant"] = everything["variant"].fillna("")
direct = pd.read_csv(HERE / "tables" / "direct_transfer.csv")
direct_mAP = {
    "ssg": float(direct.loc[direct["evaluated as"].str.startswith("SSG"), "mAP"].item()),
    "mmt": float(direct.loc[direct["evaluated as"].str.startswith("MMT"), "mAP"].item()),
}
print(save_table(variant_table(everything, ["oracle", "supervised"], params.seeds), RunFolder(HERE), "oracle"))
print(save_table(gap_closed(everything, direct_mAP, params.seeds), RunFolder(HERE), "gap_closed"))
