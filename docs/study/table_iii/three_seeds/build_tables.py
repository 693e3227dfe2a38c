"""Table III on three seeds, built from notebook 04's functions (docs/results.md "What ran: Table III on three seeds").

Every run (SSG and MMT, seeds 0-2) adapts pair C of source models (docs/results.md, "Three pairs of source models":
outputs/pretrain as notebook 01 made it on the machine that ran them). Run from the repository root, with the run
folders in outputs/:
  python docs/study/table_iii/three_seeds/build_tables.py
"""

from pathlib import Path

import pandas as pd

from canu_core.config import make_params, read_yaml
from canu_core.runs import RunFolder, atomic_write_text
from canu_core.study import (
    claim_differences,
    collect_histories,
    collect_results,
    evaluate_claims,
    format_claims,
    mu_sweep_differences,
    mu_sweep_rows,
    plan_study,
    save_table,
    table_iii,
)
from canu_core.viz.study import plot_metric_against

HERE = Path(__file__).parent
folder = RunFolder(HERE)  # tables in ./tables, as notebook 04 writes them
params = make_params(read_yaml("params/study.yaml") | {"studies": ["table_iii"], "sweep_seeds": [0, 1, 2]})
runs = plan_study(params, params.run_name)
results = collect_results(runs)
histories = collect_histories(runs)
print(f"{len(runs)} runs")


def save(table: pd.DataFrame, name: str) -> None:
    print(f"\n{name}\n{save_table(table, folder, name)}")


atomic_write_text(HERE / "results.csv", results.to_csv(index=False))
atomic_write_text(HERE / "histories.csv", histories.to_csv(index=False))
save(table_iii(results, params.mu_grid), "table_iii")
save(format_claims(evaluate_claims(mu_sweep_differences(results, params))), "table_iii_differences")
claims = [(c, d) for c, d in claim_differences(results, histories, params) if "Table III" in c.claim]
save(format_claims(evaluate_claims(claims)), "claims")
per_seed = results[results["adversary"].ne("none")].pivot_table(
    index=["method", "adversary", "mu"], columns="seed", values="target_mAP"
)
save(per_seed.round(1).reset_index(), "per_seed_mAP")
adversarial, baselines = mu_sweep_rows(results, params)
plot_metric_against(
    adversarial,
    x="mu",
    log_x=True,
    baselines=baselines,
    path=folder.figure_path("map_vs_mu.png"),
    title="+Adv. and CANU: target mAP against mu (3 seeds)",
)
