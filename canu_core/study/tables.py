"""A study's results: collected from its run folders, and the tables (the paper's and ours) built from them."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..config import ADVERSARIES, METHOD_NAMES, METHODS, Params, make_params
from ..data.synthetic.spec import WorldSpec
from ..engine.loop import with_derived_columns
from ..runs import RunFolder, atomic_write_text
from .plan import (
    PAPER_MU,
    PAPER_TABLE_III,
    PAPER_TABLE_IV,
    VARIANT_NAMES,
    WITH_ADVERSARY,
    StudyRun,
    fashion_mus,
    preset_coverage,
    run_parameters,
)

RUN_COLUMNS = (
    "run_name",
    "method",
    "adversary",
    "variant",
    "mu",
    "pretrain_seed",
    "seed",
    "default_world",
    "target_coverage",
    "target_area_fashion",
)
UNIT = ["pretrain_seed", "seed"]  # what varies independently between runs: a pair of source models, a seed within it


def _run_columns(run: StudyRun, default_coverage: float) -> dict[str, Any]:
    coverage = default_coverage if run.target_coverage is None else run.target_coverage
    # no preset sets area_fashion: a run on the target as it is has WorldSpec's own
    fashion = WorldSpec.area_fashion if run.target_area_fashion is None else run.target_area_fashion
    return {
        "run_name": run.name,
        "method": run.method,
        "adversary": run.adversary,
        "variant": run.variant,
        "mu": run.mu,
        "pretrain_seed": run.pair,
        "seed": run.seed,
        "default_world": run.target_coverage is None and run.target_area_fashion is None,
        "target_coverage": coverage,
        "target_area_fashion": fashion,
    }


def collect_histories(runs: Iterable[StudyRun], default_coverage: float = math.nan) -> pd.DataFrame:
    """Every epoch row of the finished runs, with the run's settings as leading columns (`target_coverage`: the
    run's, or `default_coverage` for a run on the target as it is), and the columns engine.loop derives from each
    (engine.loop.with_derived_columns: `disc_acc`, the mean accuracy of its discriminators)."""
    frames = []
    for run in runs:
        folder = RunFolder.for_run(run.name)
        if (folder.path / "metrics.json").is_file():
            history = with_derived_columns(folder.read_history()).drop(
                columns=["method", "adversary", "mu"], errors="ignore"
            )
            frames.append(
                history.assign(**_run_columns(run, default_coverage))[list(RUN_COLUMNS) + list(history.columns)]
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(RUN_COLUMNS))


def collect_results(runs: Iterable[StudyRun], default_coverage: float = math.nan) -> pd.DataFrame:
    """One row per finished run: its settings and its last epoch (the model an unsupervised method delivers)."""
    histories = collect_histories(runs, default_coverage)
    if histories.empty:
        return histories
    return histories.sort_values("epoch").groupby("run_name", sort=False).tail(1).sort_index().reset_index(drop=True)


def _at_paper_mu(frame: pd.DataFrame) -> pd.Series:
    """Rows without adversary (mu unused) or at the paper's mu for their method."""
    return frame["adversary"].eq("none") | frame["mu"].eq(frame["method"].map(PAPER_MU))


def _plain(frame: pd.DataFrame) -> pd.Series:
    """Rows of the default world with the paper's settings (no variant)."""
    return frame["default_world"] & frame["variant"].fillna("").eq("")


def table_iv_rows(frame: pd.DataFrame, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """The rows (runs or epochs) of Table IV: the default world, every adversary at the paper's mu, no variant;
    only `seeds` when given."""
    rows = frame[_plain(frame) & _at_paper_mu(frame)]
    return rows if seeds is None else rows[rows["seed"].isin(seeds)]


def mean_std(values: pd.Series, decimals: int = 1) -> str:
    """ "mean ± std" over seeds (std with ddof=1; a single seed shows no spread)."""
    values = values.dropna()
    if values.empty:
        return "-"
    mean = round(values.mean(), decimals) + 0.0  # + 0.0: no "-0.0"
    if len(values) == 1:
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {values.std():.{decimals}f}"


# MI in nats: differences of a few hundredths matter; mAP and R1 in %: 1
DECIMALS = {
    "mi_pseudo_camera": 2,
    "ami_pseudo_camera": 2,
    "ami_true_camera": 2,
    "camera_probe_accuracy": 3,
    "attribute_probe_accuracy": 3,
    "disc_acc": 3,
    "camera_identity_alone": 3,
}


SUMMARY_METRICS = {
    "target_R1": "R1",
    "target_mAP": "mAP",
    "mi_pseudo_camera": "MI(pseudo; cam)",
    "ami_pseudo_camera": "adj. MI(pseudo; cam)",
}
# Whether an adversary removes camera information: a fresh linear probe's camera accuracy (its judge), beside what
# the discriminators report of themselves and the probe's floor, the accuracy the true identity alone allows.
ADVERSARY_JUDGE = {
    "camera_probe_accuracy": "camera probe",
    "disc_acc": "D's camera acc.",
    "camera_identity_alone": "identity-alone level",
}


def summary_table(
    results: pd.DataFrame, by: Sequence[str], metrics: Mapping[str, str] = SUMMARY_METRICS
) -> pd.DataFrame:
    """One row per `by` group: each metric as "mean ± std" over seeds and the number of seeds."""
    rows = []
    for key, group in results.groupby(list(by), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cells = {label: mean_std(group[column], DECIMALS.get(column, 1)) for column, label in metrics.items()}
        rows.append({**dict(zip(by, key)), **cells, "seeds": group["seed"].nunique()})
    return pd.DataFrame(rows)


def method_name(method: str, adversary: str, variant: str = "") -> str:
    """The paper's name of a method (CANU-MMT...), with the variant's label."""
    return METHOD_NAMES[(method, adversary)] + VARIANT_NAMES[variant]


def _row_order(name: str) -> tuple[int, int]:
    """The paper's row order, each variant after the method it varies."""
    base = next(n for n in sorted(METHOD_NAMES.values(), key=len, reverse=True) if name.startswith(n))
    return list(METHOD_NAMES.values()).index(base), list(VARIANT_NAMES.values()).index(name[len(base) :])


def _method_order(column: pd.Series) -> pd.Series:
    """Sort key: the Method column in the paper's row order, any other column as it is."""
    return column.map(_row_order) if column.name == "Method" else column


def _with_method_names(results: pd.DataFrame) -> pd.DataFrame:
    names = [
        method_name(m, a, v) for m, a, v in zip(results["method"], results["adversary"], results["variant"].fillna(""))
    ]
    return results.assign(Method=names)


def _sorted_by_method(table: pd.DataFrame, by: Sequence[str] = ("Method",)) -> pd.DataFrame:
    return table.sort_values(list(by), key=_method_order, kind="stable").reset_index(drop=True)


def table_iv(results: pd.DataFrame, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Table IV: none / +Adv. / CANU for SSG and MMT at the paper's mu on the synthetic default (no coverage
    override, no variant; `seeds` only when given), MI included; where the runs recorded them, the adversary's
    judge beside its discriminators: the camera probe on the last clustering's features, the discriminators' own
    accuracy, and the level the true identity alone allows; the paper's real-data R1 / mAP beside."""
    rows = _with_method_names(table_iv_rows(results, seeds))
    metrics = {
        **SUMMARY_METRICS,
        **{c: label for c, label in ADVERSARY_JUDGE.items() if c in rows and rows[c].notna().any()},
    }
    table = _sorted_by_method(summary_table(rows, ["Method"], metrics))
    if "camera_probe_accuracy" in metrics:
        table["adversary acts"] = table["Method"].map(_adversary_acts(rows))
    for setting, numbers in PAPER_TABLE_IV.items():
        table[f"paper {setting} R1/mAP"] = [f"{numbers[n][0]}/{numbers[n][1]}" for n in table["Method"]]
    return table


ACTING_PROBE_DROP = 0.02  # an adversary acts if it lowers the camera probe by more than this, on average


def _adversary_acts(rows: pd.DataFrame) -> dict[str, str]:
    """Per arm with an adversary, whether it removes camera information, judged by the camera probe against its
    method's baseline (mean over runs): "yes (-0.12)", or "no: a null arm" with the change when the probe moves
    less than ACTING_PROBE_DROP; the baseline's own row says "-"."""
    probe = rows.groupby(["method", "adversary"])["camera_probe_accuracy"].mean()
    out = {}
    for method, adversary in probe.index:
        name = METHOD_NAMES[(method, adversary)]
        if adversary == "none" or (method, "none") not in probe.index:
            out[name] = "-"
            continue
        change = round(probe[(method, adversary)] - probe[(method, "none")], 3) + 0.0  # no "-0.000"
        out[name] = f"yes ({change:+.3f})" if change < -ACTING_PROBE_DROP else f"no: a null arm ({change:+.3f})"
    return out


def table_iii(results: pd.DataFrame, mu_grid: Sequence[float]) -> pd.DataFrame:
    """Table III for +Adv. and CANU, SSG and MMT, at every mu of the grid (the paper has CANU's rows only); its
    real-data R1 / mAP beside."""
    rows = results[_plain(results) & results["adversary"].isin(WITH_ADVERSARY) & results["mu"].isin(mu_grid)]
    table = _sorted_by_method(summary_table(_with_method_names(rows), ["Method", "mu"]), ["Method", "mu"])
    for index, setting in enumerate(PAPER_TABLE_IV):
        table[f"paper {setting} R1/mAP"] = [
            "/".join(map(str, PAPER_TABLE_III[(m, mu)][index])) if (m, mu) in PAPER_TABLE_III else "-"
            for m, mu in zip(table["Method"], table["mu"])
        ]
    return table


def mu_sweep_rows(results: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The mu sweep's runs on `sweep_seeds` (default world, no variant): +Adv. and CANU at every mu of the grid,
    and the runs without adversary they are drawn against."""
    plain = results[_plain(results) & results["seed"].isin(params.sweep_seeds)]
    adversarial = plain[plain["adversary"].isin(WITH_ADVERSARY) & plain["mu"].isin(params.mu_grid)]
    return adversarial, plain[plain["adversary"].eq("none")]


def _default_world_at_paper_mu(results: pd.DataFrame, seeds: Sequence[int]) -> pd.DataFrame:
    """The runs on the default world at the paper's mu (or without adversary), of `seeds`, every variant ("" for
    none)."""
    rows = results[results["default_world"] & _at_paper_mu(results) & results["seed"].isin(seeds)]
    return rows.assign(variant=rows["variant"].fillna(""))


def variant_table(results: pd.DataFrame, variants: Sequence[str], seeds: Sequence[int]) -> pd.DataFrame:
    """The baseline, CANU and the `variants` at the paper's mu on the default world, over `seeds`: the oracle arm
    (variants ["oracle", "supervised"]: CANU's condition and the baseline's pseudo-labels from the true ids) or the
    ablation (["embedding", "uniform"])."""
    rows = _default_world_at_paper_mu(results, seeds)
    rows = rows[(rows["adversary"].isin(["none", "canu"]) & rows["variant"].eq("")) | rows["variant"].isin(variants)]
    metrics = {
        "target_R1": "R1",
        "target_mAP": "mAP",
        "ami_pseudo_camera": "adj. MI(pseudo; cam)",
        "lost_ids": "lost ids",
    }
    return _sorted_by_method(summary_table(_with_method_names(rows), ["Method"], metrics))


def gap_closed(results: pd.DataFrame, direct_mAP: Mapping[str, float], seeds: Sequence[int]) -> pd.DataFrame:
    """What share of the way from direct transfer to the target-supervised upper bound (the same recipe trained with
    the target's labels: variant "supervised") each arm of Table IV covers, per method, on the mean mAPs over
    `seeds`; methods without their upper bound's runs are left out."""
    rows = _default_world_at_paper_mu(results, seeds)
    out = []
    for method in [m for m in METHODS if m in set(rows["method"]) and m in direct_mAP]:
        of_method = rows[rows["method"].eq(method)]
        supervised = of_method[of_method["variant"].eq("supervised")]["target_mAP"]
        if supervised.empty:
            continue
        span = supervised.mean() - direct_mAP[method]
        for adversary in ADVERSARIES:
            arm = of_method[of_method["adversary"].eq(adversary) & of_method["variant"].eq("")]["target_mAP"]
            if len(arm):
                out.append(
                    {
                        "Method": METHOD_NAMES[(method, adversary)],
                        "mAP": f"{arm.mean():.1f}",
                        "direct transfer": f"{direct_mAP[method]:.1f}",
                        "target labels": f"{supervised.mean():.1f}",
                        "gap closed": f"{(arm.mean() - direct_mAP[method]) / span:.0%}",
                        "seeds": arm.size,
                    }
                )
    return pd.DataFrame(out)


def coverage_rows(results: pd.DataFrame, params: Params, variants: Sequence[str] = ("",)) -> pd.DataFrame:
    """The coverage sweep's runs: `coverage_method` at the paper's mu, every coverage of the grid, of `variants`
    ("": none / +Adv. / CANU; "oracle": CANU with the true identities' condition), in the preset's fashion (the
    fashion sweep's runs sit at the preset's coverage too, in other worlds)."""
    return results[
        results["method"].eq(params.coverage_method)
        & results["target_coverage"].isin(params.coverage_grid)
        & results["target_area_fashion"].eq(WorldSpec.area_fashion)  # no preset sets another (_run_columns)
        & _at_paper_mu(results)
        & results["variant"].fillna("").isin(variants)
        & results["seed"].isin(params.sweep_seeds)
    ]


def coverage_table(results: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Ours: none / +Adv. / CANU, and CANU with the oracle condition, at every camera coverage of the target (low
    coverage = identity tied to a few adjacent cameras)."""
    rows = coverage_rows(results, params, ("", "oracle"))
    table = summary_table(_with_method_names(rows), ["target_coverage", "Method"])
    return _sorted_by_method(table, ["target_coverage", "Method"])


def fashion_rows(results: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The fashion sweep's runs: `coverage_method` at each arm's mu (fashion_mus), every target_area_fashion of the
    grid, every arm (variant "" or "oracle"), every pair of source models, the seeds of `sweep_seeds`."""
    at_arm_mu = np.array(
        [a == "none" or mu in fashion_mus(params, a) for a, mu in zip(results["adversary"], results["mu"])], dtype=bool
    )
    return results[
        results["method"].eq(params.coverage_method)
        & results["target_area_fashion"].isin(params.fashion_grid)
        & results["target_coverage"].eq(preset_coverage(params))
        & at_arm_mu
        & results["variant"].fillna("").isin(["", "oracle"])
        & results["seed"].isin(params.sweep_seeds)
    ]


FASHION_METRICS = {
    "target_mAP": "mAP",
    "target_R1": "R1",
    "camera_probe_accuracy": "camera probe",
    "attribute_probe_accuracy": "upper-colour probe",
    "ami_pseudo_camera": "adj. MI(pseudo; cam)",
}


def fashion_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per target_area_fashion, arm and mu (none for the baseline): each metric as mean ± std over runs, with how
    many pairs and runs."""
    rows = _with_method_names(rows).assign(mu=rows["mu"].where(rows["adversary"].ne("none")))
    by = ["target_area_fashion", "Method", "mu"]
    metrics = {column: label for column, label in FASHION_METRICS.items() if column in rows}
    table = summary_table(rows, by, metrics)
    pairs = rows.groupby(by, sort=False, dropna=False)["pretrain_seed"].nunique()
    table["pairs"] = pairs.to_numpy()  # summary_table's groups, in the same order
    table = _sorted_by_method(table.rename(columns={"seeds": "seeds per pair"}), by)
    return table.assign(mu=table["mu"].astype(object).where(table["mu"].notna(), "-"))  # the baseline has none


def arms_with_several_mu(rows: pd.DataFrame) -> dict[str, list[float]]:
    """The adversarial arms of `rows` that ran at more than one mu (a validation sweep), with their mu values."""
    adversarial = _with_method_names(rows[rows["adversary"].ne("none")])
    mus = adversarial.groupby("Method")["mu"].unique()
    return {arm: sorted(float(mu) for mu in values) for arm, values in mus.items() if len(values) > 1}


ATTRIBUTE_PROBES = "attribute_probes.json"  # in each run folder: the probes of its last model, computed once


def attribute_probes(params: Params, runs: Iterable[StudyRun], attribute: str = "upper colour") -> pd.DataFrame:
    """Per finished run: `attribute_probe_accuracy`, what a linear probe reads of the person's `attribute` from the
    run's last model's features of the target training images (cluster.diagnostics.attribute_probe_accuracy: people
    never on both sides of a fold), beside its chance level. Computed once per run (about 40 s on one CPU core) and
    kept in the run folder's attribute_probes.json."""
    from ..cluster.diagnostics import attribute_probe_accuracy
    from ..data.catalog import load_dataset, target_world
    from ..data.records import ids_and_cameras
    from ..data.synthetic.readout import record_attribute
    from ..engine.checkpoints import load_adapted_model
    from ..evaluation import train_set_features

    rows, worlds = [], {}
    for run in tqdm(list(runs), desc=f"{attribute} probes", unit="run"):
        folder = RunFolder.for_run(run.name)
        if not (folder.path / "metrics.json").is_file():
            continue
        kept = folder.path / ATTRIBUTE_PROBES
        probes = json.loads(kept.read_text()) if kept.is_file() else {}
        if attribute not in probes:
            run_params = make_params(run_parameters(params, run))
            world = tuple(sorted(target_world(run_params).items()))
            if world not in worlds:
                dataset = load_dataset(run_params.target, run_params.data_root, run_params.world_seed, dict(world))
                worlds[world] = (dataset, record_attribute(dataset, dataset.train, attribute))
            dataset, values = worlds[world]
            features = train_set_features(load_adapted_model(folder, run.method, "last"), dataset.train, run_params)
            pids = ids_and_cameras(dataset.train)[0]
            probes[attribute] = attribute_probe_accuracy(features.numpy(), values, pids, seed=run.seed)
            atomic_write_text(kept, json.dumps(probes, indent=2))
        probe = probes[attribute]
        rows.append(
            {"run_name": run.name, "attribute_probe_accuracy": probe["accuracy"], "attribute_chance": probe["chance"]}
        )
    return pd.DataFrame(rows, columns=["run_name", "attribute_probe_accuracy", "attribute_chance"])


def save_table(table: pd.DataFrame, folder: RunFolder, name: str) -> str:
    """Write `table` as `tables/<name>.csv` and `.md` in the study's folder; returns the Markdown."""
    markdown = table.to_markdown(index=False, disable_numparse=True)
    atomic_write_text(folder.path / "tables" / f"{name}.csv", table.to_csv(index=False))
    atomic_write_text(folder.path / "tables" / f"{name}.md", markdown + "\n")
    return markdown


def direct_transfer(
    params: Params, source_run: RunFolder, target_coverage: float | None = None
) -> dict[str, dict[str, float]]:
    """What adaptation starts from: source model `model_index` of `source_run` on the target test split (of the
    synthetic target at `target_coverage`, if given), as each method evaluates its own model (MMT: the one feature;
    SSG: the three flip-summed part features)."""
    from ..data.catalog import load_dataset, target_world
    from ..engine.checkpoints import load_source_model
    from ..engine.ssg import parts_model
    from ..evaluation import evaluate

    world = target_world(params) | ({} if target_coverage is None else {"camera_coverage": target_coverage})
    target = load_dataset(params.target, params.data_root, params.world_seed, world)
    model = load_source_model(source_run, params.model_index, params.source_checkpoint)
    evaluated = {"mmt": (model, params.flip_eval), "ssg": (parts_model(model), params.ssg_flip_eval)}
    return {
        method: evaluate(
            evaluated[method][0],
            target,
            params.height,
            params.width,
            batch_size=params.eval_batch_size,
            device=params.device,
            flip=evaluated[method][1],
        )
        for method in METHODS
        if method in params.methods
    }
