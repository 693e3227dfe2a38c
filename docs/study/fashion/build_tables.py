"""The fashion study's results, tables, claims and figures from its finished run folders (README.md here says what
it tests; notebook 04 with params/fashion.yaml runs it and builds the same in outputs/fashion/). Run from the
repository root, with the run folders in outputs/, at any point of the study: unfinished runs are left out, and
`tables/progress.md` says which worlds, pairs and seeds each arm has.
  python docs/study/fashion/build_tables.py
"""

from pathlib import Path

import pandas as pd

from canu_core.config import make_params, read_yaml
from canu_core.runs import RunFolder, atomic_write_text
from canu_core.study import (
    attribute_probes,
    collect_histories,
    collect_results,
    evaluate_claims,
    fashion_differences,
    fashion_gaps,
    fashion_rows,
    fashion_table,
    format_claims,
    plan_study,
    preset_coverage,
    save_table,
    table_iv_rows,
)
from canu_core.viz.study import plot_differences_against, plot_metric_per_epoch

HERE = Path(__file__).parent
folder = RunFolder(HERE)  # tables in ./tables, figures in ./figures, as notebook 04 writes them
params = make_params(read_yaml("params/fashion.yaml"))
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
save(format_claims(evaluate_claims(fashion_differences(results, params))), "claims")
per_pair = results.pivot_table(
    index=["target_area_fashion", "adversary", "variant"], columns="pretrain_seed", values="target_mAP"
)
save(per_pair.round(1).reset_index(), "per_pair_mAP")
plot_differences_against(
    fashion_gaps(results, params),
    x="target_area_fashion",
    path=folder.figure_path("canu_minus_adv_vs_fashion.png"),
    title="MMT: CANU - +Adv. against how much looks depend on cameras",
)
for fashion in sorted(set(histories["target_area_fashion"])):
    at = table_iv_rows(histories[histories["target_area_fashion"].eq(fashion)].assign(default_world=True))
    for column in ("target_mAP", "camera_probe_accuracy", "disc_acc"):
        plot_metric_per_epoch(
            at,
            column,
            path=folder.figure_path(f"{column}_per_epoch_fashion{fashion:g}.png"),
            title=f"Per epoch at fashion {fashion:g}: {column} (mean over pairs and seeds)",
        )
