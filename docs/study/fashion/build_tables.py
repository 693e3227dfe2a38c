"""The fashion study's results, tables, claims and figures from its finished run folders (README.md here says what
it tests; notebook 04 with params/fashion.yaml runs it and builds the same in outputs/fashion/). Run from the
repository root, with the run folders in outputs/, at any point of the study: unfinished runs are left out, and
`tables/progress.md` says which worlds, pairs and seeds each arm has. The target-supervised upper bound (MMT
trained with the target's labels, seed 0 of each pair, at lambda 0: the oracle study's runs of the same folder names,
run with `studies: [oracle]`, `methods: [mmt]`, `seeds: [0]` on these parameters) gives `tables/upper_bound.md`.
  python docs/study/fashion/build_tables.py
Another study of the same kind (its parameter file, the folder for its tables), e.g. at each arm's chosen mu, or a
validation sweep of mu (several per arm: a table per mu, no claims):
  python docs/study/fashion/build_tables.py params/fashion-best-mu.yaml docs/study/fashion/best_mu
"""

import sys
from pathlib import Path

import pandas as pd

from canu_core.config import make_params, read_yaml
from canu_core.runs import RunFolder, atomic_write_text
from canu_core.study import (
    arms_with_several_mu,
    attribute_probes,
    collect_histories,
    collect_results,
    direct_transfer,
    evaluate_claims,
    fashion_differences,
    fashion_gaps,
    fashion_rows,
    fashion_table,
    format_claims,
    pair_run_name,
    plan_study,
    preset_coverage,
    save_table,
)
from canu_core.viz.study import plot_differences_against, plot_metric_per_epoch

PARAMETERS, HERE = (
    (sys.argv[1], Path(sys.argv[2])) if len(sys.argv) > 1 else ("params/fashion.yaml", Path(__file__).parent)
)
folder = RunFolder(HERE)  # tables in ./tables, figures in ./figures, as notebook 04 writes them
params = make_params(read_yaml(PARAMETERS))
runs = plan_study(params, params.run_name)
coverage = preset_coverage(params)
results = fashion_rows(collect_results(runs, coverage), params)
histories = collect_histories([r for r in runs if r.name in set(results["run_name"])], coverage)
results = results.merge(attribute_probes(params, [r for r in runs if r.name in set(results["run_name"])]))
print(f"{len(results)} of {len(runs)} runs finished")


def save(table: pd.DataFrame, name: str) -> None:
    print(f"\n{name}\n{save_table(table, folder, name)}")


atomic_write_text(HERE / "results.csv", results.to_csv(index=False))
atomic_write_text(HERE / "histories.csv", histories.to_csv(index=False))
progress = (
    results.assign(
        arm=results["adversary"] + results["variant"].fillna("").radd("-").where(results["variant"].ne(""), "")
    )
    .groupby(["target_area_fashion", "arm"])
    .agg(pairs=("pretrain_seed", lambda p: ", ".join(str(v) for v in sorted(set(p)))), runs=("run_name", "size"))
    .reset_index()
)
save(progress, "progress")
save(fashion_table(results), "fashion")
per_pair = results.assign(mu=results["mu"].where(results["adversary"].ne("none"), "-")).pivot_table(
    index=["target_area_fashion", "adversary", "variant", "mu"], columns="pretrain_seed", values="target_mAP"
)
save(per_pair.round(1).reset_index(), "per_pair_mAP")
if arms_with_several_mu(results):  # a validation sweep: the fashion table, per mu, is its result
    sys.exit(0)
save(format_claims(evaluate_claims(fashion_differences(results, params))), "claims")
plot_differences_against(
    fashion_gaps(results, params),
    x="target_area_fashion",
    path=folder.figure_path("canu_minus_adv_vs_fashion.png"),
    title="MMT: CANU - +Adv. against how much looks depend on cameras",
)
for fashion in sorted(set(histories["target_area_fashion"])):
    at = histories[histories["target_area_fashion"].eq(fashion) & histories["variant"].fillna("").eq("")]
    for column in ("target_mAP", "camera_probe_accuracy", "disc_acc"):
        plot_metric_per_epoch(
            at,
            column,
            path=folder.figure_path(f"{column}_per_epoch_fashion{fashion:g}.png"),
            title=f"Per epoch at fashion {fashion:g}: {column} (mean over pairs and seeds)",
        )

# The share of the way from direct transfer to the target-supervised upper bound each arm covers at lambda 0, per
# pair (each pair's own direct transfer and upper bound; the arms' mAP the mean over the pair's seeds).
oracle_params = make_params(
    {**read_yaml("params/fashion.yaml"), "studies": ["oracle"], "methods": ["mmt"], "seeds": [0]}
)
supervised_runs = [r for r in plan_study(oracle_params, params.run_name) if r.overrides.get("clustering") == "true_ids"]
supervised = collect_results(supervised_runs, coverage)
if len(supervised):
    at_zero = results[results["target_area_fashion"].eq(0.0)]
    rows = []
    for pair, bound in supervised.set_index("pretrain_seed")["target_mAP"].items():
        direct = direct_transfer(params, RunFolder.for_run(pair_run_name(params, pair)))["mmt"]["mAP"]
        of_pair = at_zero[at_zero["pretrain_seed"].eq(pair)].fillna({"variant": ""})
        for (adversary, variant), arm in of_pair.groupby(["adversary", "variant"], sort=False)["target_mAP"]:
            rows.append(
                {
                    "pair": pair,
                    "arm": adversary + (f"-{variant}" if variant else ""),
                    "mAP": arm.mean(),
                    "direct transfer": direct,
                    "target labels": bound,
                    "gap closed": (arm.mean() - direct) / (bound - direct),
                }
            )
    per_pair_gap = pd.DataFrame(rows)
    save(per_pair_gap.round(3), "upper_bound_per_pair")
    summary = per_pair_gap.groupby("arm", sort=False).agg(
        pairs=("pair", "size"),
        mAP=("mAP", "mean"),
        direct=("direct transfer", "mean"),
        upper_bound=("target labels", "mean"),
        gap_closed_mean=("gap closed", "mean"),
        gap_closed_sd=("gap closed", "std"),
    )
    save(summary.round(3).reset_index(), "upper_bound")
