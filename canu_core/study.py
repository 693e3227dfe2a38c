"""The paper's ablations as sweeps of notebook 03: plan the runs, execute the missing ones, gather their results.

A study is a list of adaptation runs, each a recorded notebook 03 in its own run folder named after what it varies
(`<study>-mmt-canu-mu0.1-seed0`), so that two tables needing the same run share it, a finished run (its
`metrics.json` written) is skipped and an interrupted one resumes from its last checkpoint. Tables III (mu) and IV
(none / adv / canu) are the paper's; the camera-coverage sweep of the synthetic target (how strongly identity and
camera are tied) is ours.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import Params, as_dict, make_params
from .data.catalog import SYNTHETIC_PREFIX, world_spec
from .runs import RunFolder, atomic_write_text, resolve_run

# The study's own parameters: they choose which runs exist, so they are not passed on to the runs.
STUDY_FIELDS = ("studies", "methods", "seeds", "mu_grid", "coverage_grid", "coverage_method", "parallel_runs")
METHODS = ("ssg", "mmt")
ADVERSARIES = ("none", "adv", "canu")
PAPER_MU = {"ssg": 0.05, "mmt": 0.1}  # the paper's choice for CANU-SSG and CANU-MMT (Table III)
METHOD_NAMES = {("ssg", "none"): "SSG", ("ssg", "adv"): "SSG+Adv.", ("ssg", "canu"): "CANU-SSG",
                ("mmt", "none"): "MMT (DBSCAN)", ("mmt", "adv"): "MMT+Adv.", ("mmt", "canu"): "CANU-MMT"}
# The paper's R1 / mAP on the real settings (Tables III and IV), shown beside the synthetic study's.
PAPER_TABLE_IV = {
    "Market->Duke": {"SSG": (73.0, 53.4), "SSG+Adv.": (75.4, 56.4), "CANU-SSG": (76.1, 57.0),
                     "MMT (DBSCAN)": (80.2, 67.2), "MMT+Adv.": (82.6, 70.3), "CANU-MMT": (83.3, 70.3)},
    "Duke->Market": {"SSG": (80.0, 58.3), "SSG+Adv.": (83.8, 62.7), "CANU-SSG": (83.3, 61.9),
                     "MMT (DBSCAN)": (91.7, 79.3), "MMT+Adv.": (93.6, 82.2), "CANU-MMT": (94.2, 83.0)},
}
PAPER_TABLE_III = {  # (method, mu) -> R1 / mAP, Market->Duke then Duke->Market
    ("CANU-SSG", 0.01): ((72.8, 53.3), (79.7, 57.2)), ("CANU-SSG", 0.05): ((76.1, 57.0), (83.3, 61.9)),
    ("CANU-SSG", 0.1): ((74.7, 56.2), (82.7, 61.1)), ("CANU-SSG", 0.2): ((75.3, 56.5), (81.8, 60.3)),
    ("CANU-SSG", 0.4): ((73.3, 53.5), (80.4, 59.2)), ("CANU-SSG", 1.8): ((7.1, 2.9), (39.1, 17.1)),
    ("CANU-MMT", 0.01): ((81.3, 68.9), (92.6, 79.2)), ("CANU-MMT", 0.05): ((82.4, 70.3), (93.0, 81.3)),
    ("CANU-MMT", 0.1): ((83.3, 70.3), (94.2, 83.0)), ("CANU-MMT", 0.2): ((82.7, 70.3), (93.4, 82.5)),
    ("CANU-MMT", 0.4): ((82.5, 70.3), (93.8, 82.0)), ("CANU-MMT", 1.8): ((82.8, 69.9), (93.1, 81.3)),
}


@dataclass(frozen=True)
class StudyRun:
    """One adaptation run of a study: its folder name and what it sets on top of the study's parameters."""

    name: str
    method: str
    adversary: str
    mu: float
    seed: int
    target_coverage: float | None = None

    @property
    def overrides(self) -> dict[str, Any]:
        return {"run_name": self.name, "method": self.method, "adversary": self.adversary, "mu": self.mu,
                "seed": self.seed, "target_coverage": self.target_coverage}


def study_run(study: str, method: str, adversary: str, mu: float, seed: int,
              target_coverage: float | None = None) -> StudyRun:
    """The run of these settings, named after them. A run without adversary ignores mu: it is named without it
    and shared by every mu."""
    mu_part = "" if adversary == "none" else f"-mu{mu}"
    coverage_part = "" if target_coverage is None else f"-cov{target_coverage}"
    name = f"{study}-{method}-{adversary}{mu_part}{coverage_part}-seed{seed}"
    return StudyRun(name, method, adversary, mu if adversary != "none" else PAPER_MU[method], seed, target_coverage)


def plan_study(params: Params, study: str) -> list[StudyRun]:
    """Every run the chosen studies need, each once, in a stable order: Table IV (every method x adversary at the
    paper's mu) and Table III (CANU at every mu of `mu_grid`), both for each of `methods`, then the coverage sweep
    (`coverage_method` x adversary at every coverage of `coverage_grid`)."""
    runs: list[StudyRun] = []
    methods = [m for m in METHODS if m in params.methods]
    for seed in params.seeds:
        if "table_iv" in params.studies:
            runs += [study_run(study, m, a, PAPER_MU[m], seed) for m in methods for a in ADVERSARIES]
        if "table_iii" in params.studies:
            runs += [study_run(study, m, "canu", mu, seed) for m in methods for mu in params.mu_grid]
        if "coverage" in params.studies:
            m, preset = params.coverage_method, preset_coverage(params)
            runs += [study_run(study, m, a, PAPER_MU[m], seed, None if c == preset else c)
                     for c in params.coverage_grid for a in ADVERSARIES]
    return list({run.name: run for run in runs}.values())


def preset_coverage(params: Params) -> float:
    """The camera coverage of the study's synthetic target (the coverage sweep needs one): a run at that value is
    the default world's run, shared with Tables III and IV."""
    if not params.target.startswith(SYNTHETIC_PREFIX):
        raise ValueError(f"the coverage study sweeps a knob of synthetic worlds; target is {params.target!r}: "
                         f"leave 'coverage' out of studies")
    return world_spec(params.target).camera_coverage


def run_parameters(params: Params, run: StudyRun) -> dict[str, Any]:
    """The full parameter set of one run: the study's parameters without its own fields, then the run's; the
    study's threads shared between its `parallel_runs`."""
    values = as_dict(make_params({**as_dict(params), **run.overrides}))
    values["threads"] = max(1, (params.threads or torch.get_num_threads()) // params.parallel_runs)
    return {k: v for k, v in values.items() if k not in STUDY_FIELDS}


def run_state(params: Params, run: StudyRun) -> str:
    """"finished" (metrics written), "partial" (started: resumes from its checkpoint) or "new". A folder that
    holds another run is refused as notebook 03 would refuse it (runs.resolve_run)."""
    folder = RunFolder.for_run(run.name)
    if not folder.params_path.is_file():
        return "new"
    resolve_run(make_params(run_parameters(params, run)), "03_train")
    return "finished" if (folder.path / "metrics.json").is_file() else "partial"


def execute_study(params: Params, runs: Sequence[StudyRun]) -> pd.DataFrame:
    """Run every unfinished run of `runs` through notebook 03 (`params.parallel_runs` at once, the CPU threads
    shared between them) and return one row per run: its name, state before and after, and the error of a run
    that failed (the others go on; its executed notebook, in outputs/.failed/<run_name>/, shows where)."""
    from .notebook import run_notebook

    states = {run.name: run_state(params, run) for run in runs}
    todo = [run for run in runs if states[run.name] != "finished"]
    print(f"{len(runs)} runs: {len(runs) - len(todo)} finished already, {len(todo)} to run "
          f"({sum(s == 'partial' for s in states.values())} resuming)")
    errors: dict[str, str] = {}

    def execute(run: StudyRun) -> None:
        try:
            run_notebook("03_train", parameters=run_parameters(params, run))
        except Exception as err:  # noqa: BLE001 - one failed run must not stop the sweep; reported below
            errors[run.name] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err) else ''}"

    with ThreadPoolExecutor(max_workers=params.parallel_runs) as pool:
        for _ in tqdm(pool.map(execute, todo), total=len(todo), desc="study runs", unit="run"):
            pass
    return pd.DataFrame([{"run_name": run.name, "before": states[run.name],
                          "after": "failed" if run.name in errors else "finished", "error": errors.get(run.name, "")}
                         for run in runs])


RUN_COLUMNS = ("run_name", "method", "adversary", "mu", "seed", "default_world", "target_coverage")


def _run_columns(run: StudyRun, default_coverage: float) -> dict[str, Any]:
    coverage = default_coverage if run.target_coverage is None else run.target_coverage
    return {"run_name": run.name, "method": run.method, "adversary": run.adversary, "mu": run.mu, "seed": run.seed,
            "default_world": run.target_coverage is None, "target_coverage": coverage}


def collect_histories(runs: Iterable[StudyRun], default_coverage: float = math.nan) -> pd.DataFrame:
    """Every epoch row of the finished runs, with the run's settings as leading columns (`target_coverage`: the
    run's, or `default_coverage` for a run on the target as it is)."""
    frames = []
    for run in runs:
        folder = RunFolder.for_run(run.name)
        if (folder.path / "metrics.json").is_file():
            history = folder.read_history().drop(columns=["method", "adversary", "mu"], errors="ignore")
            frames.append(history.assign(**_run_columns(run, default_coverage))[
                list(RUN_COLUMNS) + list(history.columns)])
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


def table_iv_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows (runs or epochs) of Table IV: the default world, every adversary at the paper's mu."""
    return frame[frame["default_world"] & _at_paper_mu(frame)]


def mean_std(values: pd.Series, decimals: int = 1) -> str:
    """"mean ± std" over seeds (std with ddof=1; a single seed shows no spread)."""
    values = values.dropna()
    if values.empty:
        return "-"
    mean = round(values.mean(), decimals) + 0.0  # + 0.0: no "-0.0"
    if len(values) == 1:
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {values.std():.{decimals}f}"


# MI in nats: differences of a few hundredths matter; mAP and R1 in %: 1
DECIMALS = {"mi_pseudo_camera": 2, "ami_pseudo_camera": 2}


def summary_table(results: pd.DataFrame, by: Sequence[str],
                  metrics: Mapping[str, str] = {"target_R1": "R1", "target_mAP": "mAP",
                                                "mi_pseudo_camera": "MI(pseudo; cam)",
                                                "ami_pseudo_camera": "adj. MI(pseudo; cam)"}) -> pd.DataFrame:
    """One row per `by` group: each metric as "mean ± std" over seeds and the number of seeds."""
    rows = []
    for key, group in results.groupby(list(by), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cells = {label: mean_std(group[column], DECIMALS.get(column, 1)) for column, label in metrics.items()}
        rows.append({**dict(zip(by, key)), **cells, "seeds": group["seed"].nunique()})
    return pd.DataFrame(rows)


METHOD_ORDER = {name: index for index, name in enumerate(METHOD_NAMES.values())}  # the paper's row order


def _method_order(column: pd.Series) -> pd.Series:
    """Sort key: the Method column in the paper's row order, any other column as it is."""
    return column.map(METHOD_ORDER) if column.name == "Method" else column


def _with_method_names(results: pd.DataFrame) -> pd.DataFrame:
    names = [METHOD_NAMES[(m, a)] for m, a in zip(results["method"], results["adversary"])]
    return results.assign(Method=names)


def table_iv(results: pd.DataFrame) -> pd.DataFrame:
    """Table IV: none / +Adv. / CANU for SSG and MMT at the paper's mu on the synthetic default (no coverage
    override), MI included, the paper's real-data R1 / mAP beside."""
    table = summary_table(_with_method_names(table_iv_rows(results)), ["Method"])
    table = table.sort_values("Method", key=_method_order).reset_index(drop=True)
    for setting, numbers in PAPER_TABLE_IV.items():
        table[f"paper {setting} R1/mAP"] = [f"{numbers[n][0]}/{numbers[n][1]}" for n in table["Method"]]
    return table


def table_iii(results: pd.DataFrame, mu_grid: Sequence[float]) -> pd.DataFrame:
    """Table III: CANU-SSG and CANU-MMT at every mu of the grid, the paper's real-data R1 / mAP beside."""
    rows = results[results["default_world"] & results["adversary"].eq("canu") & results["mu"].isin(mu_grid)]
    table = summary_table(_with_method_names(rows), ["Method", "mu"])
    table = table.sort_values(["Method", "mu"], key=_method_order).reset_index(drop=True)
    for index, setting in enumerate(PAPER_TABLE_IV):
        table[f"paper {setting} R1/mAP"] = [
            "/".join(map(str, PAPER_TABLE_III[(m, mu)][index])) if (m, mu) in PAPER_TABLE_III else "-"
            for m, mu in zip(table["Method"], table["mu"])]
    return table


def coverage_rows(results: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The coverage sweep's runs: `coverage_method` at the paper's mu, every coverage of the grid."""
    return results[results["method"].eq(params.coverage_method) & results["target_coverage"].isin(params.coverage_grid)
                   & _at_paper_mu(results)]


def coverage_table(results: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Ours: none / +Adv. / CANU at every camera coverage of the target (low coverage = identity tied to a
    few adjacent cameras)."""
    rows = coverage_rows(results, params)
    table = summary_table(_with_method_names(rows), ["target_coverage", "Method"])
    return table.sort_values(["target_coverage"], kind="stable").reset_index(drop=True)


def save_table(table: pd.DataFrame, folder: RunFolder, name: str) -> str:
    """Write `table` as `tables/<name>.csv` and `.md` in the study's folder; returns the Markdown."""
    markdown = table.to_markdown(index=False, disable_numparse=True)
    atomic_write_text(folder.path / "tables" / f"{name}.csv", table.to_csv(index=False))
    atomic_write_text(folder.path / "tables" / f"{name}.md", markdown + "\n")
    return markdown


def paired_differences(results: pd.DataFrame,
                       metrics: Sequence[str] = ("target_mAP", "target_R1", "mi_pseudo_camera",
                                                 "ami_pseudo_camera")) -> pd.DataFrame:
    """The paper's claims as paired comparisons on the default world at the paper's mu: for each method, CANU and
    +Adv. against the baseline and CANU against +Adv., the per-seed difference of each metric (same seed: same
    source models and world), its mean ± std and on how many seeds it is positive."""
    rows = table_iv_rows(results)
    out = []
    for method in [m for m in METHODS if m in set(rows["method"])]:
        by_seed = rows[rows["method"] == method].pivot_table(index="seed", columns="adversary", values=list(metrics))
        for better, worse in (("canu", "none"), ("adv", "none"), ("canu", "adv")):
            if better not in by_seed.columns.get_level_values(1) or worse not in by_seed.columns.get_level_values(1):
                continue
            for metric in metrics:
                difference = (by_seed[(metric, better)] - by_seed[(metric, worse)]).dropna()
                out.append({"comparison": f"{METHOD_NAMES[(method, better)]} - {METHOD_NAMES[(method, worse)]}",
                            "metric": metric, "difference": mean_std(difference, DECIMALS.get(metric, 1)),
                            "seeds": len(difference),
                            "positive on": f"{int((difference > 0).sum())}/{len(difference)}"})
    return pd.DataFrame(out)
