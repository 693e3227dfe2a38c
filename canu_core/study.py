"""The paper's ablations as sweeps of notebook 03: plan the runs, execute the missing ones, gather their results.

A study is a list of adaptation runs, each a recorded notebook 03 in its own run folder named after what it varies
(`<study>-mmt-canu-mu0.1-seed0`), so that two tables needing the same run share it, a finished run (its
`metrics.json` written) is skipped and an interrupted one resumes from its last checkpoint. The named studies:
"table_iv" (none / adv / canu at the paper's mu) and "table_iii" (adv and canu at every mu) are the paper's; ours are
"oracle" (CANU conditioned on the true identities' centroids: a diagnostic, never a method), "coverage" (how strongly
identity and camera are tied in the synthetic target) and "ablation" (what the discriminators read, and a bounded
adversarial objective). `claims_table` tests each of the paper's claims on the per-seed paired differences.
"""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest
from scipy.stats import t as student_t
from tqdm.auto import tqdm

from .config import ADVERSARIES, METHODS, STUDY_FIELDS, Params, as_dict, make_params
from .data.catalog import SYNTHETIC_PREFIX, world_spec
from .data.synthetic.spec import WorldSpec
from .runs import RunFolder, atomic_write_text, outputs_root, resolve_run

WITH_ADVERSARY = tuple(a for a in ADVERSARIES if a != "none")  # +Adv. and CANU, the arms with a mu
PAPER_MU = {"ssg": 0.05, "mmt": 0.1}  # the paper's choice for CANU-SSG and CANU-MMT (Table III)
# Run variants beyond the paper's settings: what each sets, and how tables name it. "oracle" reads the target's
# labels: it is a diagnostic of the mechanism, labelled as such wherever it appears.
VARIANTS = {
    "": {},
    "oracle": {"canu_condition": "oracle"},
    "embedding": {"adversary_features": "embedding"},
    "uniform": {"adversary_objective": "uniform_ce"},
    "supervised": {"clustering": "true_ids"},
}
VARIANT_NAMES = {
    "": "",
    "oracle": " [oracle condition]",
    "embedding": " [D reads the embedding]",
    "uniform": " [uniform-CE objective]",
    "supervised": " [target labels: upper bound]",
}
METHOD_NAMES = {
    ("ssg", "none"): "SSG",
    ("ssg", "adv"): "SSG+Adv.",
    ("ssg", "canu"): "CANU-SSG",
    ("mmt", "none"): "MMT (DBSCAN)",
    ("mmt", "adv"): "MMT+Adv.",
    ("mmt", "canu"): "CANU-MMT",
}
# The paper's R1 / mAP on the real settings (Tables III and IV), shown beside the synthetic study's.
PAPER_TABLE_IV = {
    "Market->Duke": {
        "SSG": (73.0, 53.4),
        "SSG+Adv.": (75.4, 56.4),
        "CANU-SSG": (76.1, 57.0),
        "MMT (DBSCAN)": (80.2, 67.2),
        "MMT+Adv.": (82.6, 70.3),
        "CANU-MMT": (83.3, 70.3),
    },
    "Duke->Market": {
        "SSG": (80.0, 58.3),
        "SSG+Adv.": (83.8, 62.7),
        "CANU-SSG": (83.3, 61.9),
        "MMT (DBSCAN)": (91.7, 79.3),
        "MMT+Adv.": (93.6, 82.2),
        "CANU-MMT": (94.2, 83.0),
    },
}
PAPER_TABLE_III = {  # (method, mu) -> R1 / mAP, Market->Duke then Duke->Market
    ("CANU-SSG", 0.01): ((72.8, 53.3), (79.7, 57.2)),
    ("CANU-SSG", 0.05): ((76.1, 57.0), (83.3, 61.9)),
    ("CANU-SSG", 0.1): ((74.7, 56.2), (82.7, 61.1)),
    ("CANU-SSG", 0.2): ((75.3, 56.5), (81.8, 60.3)),
    ("CANU-SSG", 0.4): ((73.3, 53.5), (80.4, 59.2)),
    ("CANU-SSG", 1.8): ((7.1, 2.9), (39.1, 17.1)),
    ("CANU-MMT", 0.01): ((81.3, 68.9), (92.6, 79.2)),
    ("CANU-MMT", 0.05): ((82.4, 70.3), (93.0, 81.3)),
    ("CANU-MMT", 0.1): ((83.3, 70.3), (94.2, 83.0)),
    ("CANU-MMT", 0.2): ((82.7, 70.3), (93.4, 82.5)),
    ("CANU-MMT", 0.4): ((82.5, 70.3), (93.8, 82.0)),
    ("CANU-MMT", 1.8): ((82.8, 69.9), (93.1, 81.3)),
}


@dataclass(frozen=True)
class StudyRun:
    """One adaptation run of a study: its folder name and what it sets on top of the study's parameters. `pair`:
    the seed of its source models (the unit of analysis: runs of one pair share their starting point);
    `pretrain_run`: their folder, None for the study's own pretrain_run."""

    name: str
    method: str
    adversary: str
    mu: float
    seed: int
    target_coverage: float | None = None
    variant: str = ""
    target_area_fashion: float | None = None
    pair: int = 1
    pretrain_run: str | None = None

    @property
    def overrides(self) -> dict[str, Any]:
        pretraining = {} if self.pretrain_run is None else {"pretrain_run": self.pretrain_run}
        return {
            "run_name": self.name,
            "method": self.method,
            "adversary": self.adversary,
            "mu": self.mu,
            "seed": self.seed,
            "target_coverage": self.target_coverage,
            "target_area_fashion": self.target_area_fashion,
            **pretraining,
            **VARIANTS[self.variant],
        }


def study_run(
    study: str,
    method: str,
    adversary: str,
    mu: float,
    seed: int,
    target_coverage: float | None = None,
    variant: str = "",
    target_area_fashion: float | None = None,
    pair: int = 1,
    pretrain_run: str | None = None,
) -> StudyRun:
    """The run of these settings, named after them. A run without adversary ignores mu: it is named without it
    and shared by every mu. A run from a pair of source models other than the study's own pretrain_run is named
    after the pair's seed."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown study variant {variant!r}: expected one of {sorted(VARIANTS)}")
    mu_part = "" if adversary == "none" else f"-mu{mu}"
    variant_part = f"-{variant}" if variant else ""
    coverage_part = "" if target_coverage is None else f"-cov{target_coverage}"
    fashion_part = "" if target_area_fashion is None else f"-fashion{target_area_fashion}"
    pair_part = "" if pretrain_run is None else f"-pair{pair}"
    name = f"{study}-{method}-{adversary}{variant_part}{mu_part}{coverage_part}{fashion_part}{pair_part}-seed{seed}"
    return StudyRun(
        name,
        method,
        adversary,
        mu if adversary != "none" else PAPER_MU[method],
        seed,
        target_coverage,
        variant,
        target_area_fashion,
        pair,
        pretrain_run,
    )


def pair_run_name(params: Params, pretrain_seed: int) -> str:
    """The folder of the pair of source models trained with `pretrain_seed` (notebook 01's `seed`): pretrain_run for
    the study's own `seed`, so that the default study and notebooks 02 / 03 share it; <pretrain_run>-seed<k> else."""
    return params.pretrain_run if pretrain_seed == params.seed else f"{params.pretrain_run}-seed{pretrain_seed}"


def study_pairs(params: Params) -> list[tuple[int, str | None]]:
    """(pretrain seed, folder or None for pretrain_run itself) of every pair the study adapts from."""
    if not params.pretrain_seeds:
        return [(params.seed, None)]
    return [(k, pair_run_name(params, k)) for k in params.pretrain_seeds]


def plan_study(params: Params, study: str) -> list[StudyRun]:
    """Every run the chosen studies need, each once, study after study in the order of priority (Table IV, the
    oracle arm, Table III, coverage, ablation, fashion: a study interrupted for lack of time leaves the earlier ones
    complete), seed after seed within each, every pair of source models (`pretrain_seeds`) within a seed. On
    `seeds`: Table IV (every method x adversary at the paper's mu) and the oracle arm (with the baseline and CANU it
    is compared with). On `sweep_seeds`: Table III (+Adv. and CANU at every mu of `mu_grid`, with the baseline), the
    coverage sweep (`coverage_method` x adversary, and CANU with the oracle condition, at every coverage of
    `coverage_grid`), the ablation (CANU with the discriminators reading the embedding, and with the uniform-CE
    objective, beside CANU as it is) and the fashion sweep (the coverage sweep's arms at every target_area_fashion
    of `fashion_grid`, in the grid's order, each over every pair before the next)."""
    methods = [m for m in METHODS if m in params.methods]
    pairs = study_pairs(params)

    def run(method, adversary, mu, seed, pair, **settings):
        return study_run(study, method, adversary, mu, seed, pair=pair[0], pretrain_run=pair[1], **settings)

    def table_iv(seed, pair):
        return [run(m, a, PAPER_MU[m], seed, pair) for m in methods for a in ADVERSARIES]

    def oracle(seed, pair):
        return [
            run(m, a, PAPER_MU[m], seed, pair, variant=v)
            for m in methods
            for a, v in (("none", ""), ("canu", ""), ("canu", "oracle"), ("none", "supervised"))
        ]

    def table_iii(seed, pair):
        return [run(m, "none", PAPER_MU[m], seed, pair) for m in methods] + [
            run(m, a, mu, seed, pair) for m in methods for a in WITH_ADVERSARY for mu in params.mu_grid
        ]

    world_arms = [(a, "") for a in ADVERSARIES] + [("canu", "oracle")]

    def coverage(seed, pair):
        m, preset = params.coverage_method, preset_coverage(params)
        return [
            run(m, a, PAPER_MU[m], seed, pair, target_coverage=None if c == preset else c, variant=v)
            for c in params.coverage_grid
            for a, v in world_arms
        ]

    def ablation(seed, pair):
        return [
            run(m, a, PAPER_MU[m], seed, pair, variant=v)
            for m in methods
            for a, v in (("none", ""), ("canu", ""), ("canu", "embedding"), ("canu", "uniform"))
        ]

    def fashion(seed, fashion_value, pair):
        m, preset = params.coverage_method, preset_world(params).area_fashion
        value = None if fashion_value == preset else fashion_value
        return [run(m, a, PAPER_MU[m], seed, pair, target_area_fashion=value, variant=v) for a, v in world_arms]

    def over_pairs(runs_of):
        return lambda seed: [r for pair in pairs for r in runs_of(seed, pair)]

    order = (
        ("table_iv", over_pairs(table_iv), params.seeds),
        ("oracle", over_pairs(oracle), params.seeds),
        ("table_iii", over_pairs(table_iii), params.sweep_seeds),
        ("coverage", over_pairs(coverage), params.sweep_seeds),
        ("ablation", over_pairs(ablation), params.sweep_seeds),
        (
            "fashion",
            lambda seed: [r for f in params.fashion_grid for pair in pairs for r in fashion(seed, f, pair)],
            params.sweep_seeds,
        ),
    )
    runs = [r for name, runs_of, seeds in order if name in params.studies for seed in seeds for r in runs_of(seed)]
    return list({r.name: r for r in runs}.values())


def preset_world(params: Params) -> WorldSpec:
    """The spec of the study's synthetic target (the world sweeps need one): a run at its own coverage or fashion is
    the default world's run, shared with Tables III and IV."""
    if not params.target.startswith(SYNTHETIC_PREFIX):
        raise ValueError(
            f"the coverage and fashion studies sweep knobs of synthetic worlds; target is {params.target!r}: "
            f"leave them out of studies"
        )
    return world_spec(params.target)


def preset_coverage(params: Params) -> float:
    """The camera coverage of the study's synthetic target."""
    return preset_world(params).camera_coverage


def run_parameters(params: Params, run: StudyRun) -> dict[str, Any]:
    """The full parameter set of one run: the study's parameters without its own fields, then the run's; its
    threads: the study's shared between its `parallel_runs` on this machine, a job's CPUs on a cluster."""
    values = as_dict(make_params({**as_dict(params), **run.overrides}))
    if params.executor == "local":
        values["threads"] = max(1, (params.threads or torch.get_num_threads()) // params.parallel_runs)
    else:
        values["threads"] = params.cpus_per_run
    return {k: v for k, v in values.items() if k not in STUDY_FIELDS}


def run_state(params: Params, run: StudyRun) -> str:
    """ "finished" (metrics written), "partial" (started: resumes from its checkpoint) or "new". A folder that
    holds another run is refused as notebook 03 would refuse it (runs.resolve_run)."""
    folder = RunFolder.for_run(run.name)
    if not folder.params_path.is_file():
        return "new"
    resolve_run(make_params(run_parameters(params, run)), "03_train")
    return "finished" if (folder.path / "metrics.json").is_file() else "partial"


def execute_study(params: Params, runs: Sequence[StudyRun]) -> pd.DataFrame:
    """Run every unfinished run of `runs` through notebook 03 and return one row per run: its name, state before and
    after, and the error of a run that failed (the others go on) with where to look: its executed notebook
    (outputs/.failed/<run_name>/) and, for a job, its log. `params.executor` "local": `parallel_runs` at once on
    this machine, the CPU threads shared between them; "slurm" / "submitit_local": one submitit job per run."""
    states = {run.name: run_state(params, run) for run in runs}
    todo = [run for run in runs if states[run.name] != "finished"]
    print(
        f"{len(runs)} runs: {len(runs) - len(todo)} finished already, {len(todo)} to run "
        f"({sum(s == 'partial' for s in states.values())} resuming)"
    )
    execute = execute_locally if params.executor == "local" else execute_as_jobs
    errors, logs = execute(params, todo) if todo else ({}, {})
    return pd.DataFrame(
        [
            {
                "run_name": run.name,
                "before": states[run.name],
                "after": "failed" if run.name in errors else "finished",
                "error": errors.get(run.name, ""),
                "log": logs.get(run.name, ""),
            }
            for run in runs
        ]
    )


ERROR_LINE = re.compile(r"^\s*[\w.]*(Error|Exception|Interrupt): \S")  # "ValueError: ..." in a job's traceback


def _last_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"


def execute_locally(params: Params, runs: Sequence[StudyRun]) -> tuple[dict[str, str], dict[str, str]]:
    """Notebook 03 for each run in this machine's kernels, `params.parallel_runs` at once; the errors by run."""
    errors: dict[str, str] = {}

    def execute(run: StudyRun) -> None:
        try:
            run_one(run_parameters(params, run))
        except Exception as err:  # noqa: BLE001 - one failed run must not stop the sweep; reported below
            errors[run.name] = _last_line(err)

    with ThreadPoolExecutor(max_workers=params.parallel_runs) as pool:
        for _ in tqdm(pool.map(execute, runs), total=len(runs), desc="study runs", unit="run"):
            pass
    return errors, {}


def run_one(parameters: dict[str, Any]) -> str:
    """One study run: notebook 03 with these parameters (from a local worker thread, or as a submitit job in the
    job's own process)."""
    from .notebook import run_notebook

    return str(run_notebook("03_train", parameters=parameters))


def job_executor(params: Params):
    """A submitit executor for the study's jobs, its folders (logs, pickled calls) in outputs/.jobs/<run_name>/."""
    import submitit

    folder = outputs_root() / ".jobs" / params.run_name / "%j"
    if params.executor == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(
            name=params.run_name,
            timeout_min=params.time_limit,
            cpus_per_task=params.cpus_per_run,
            gpus_per_node=params.gpus_per_run,
            slurm_array_parallelism=params.parallel_runs,
            **({"slurm_partition": params.slurm_partition} if params.slurm_partition else {}),
        )
    else:
        executor = submitit.AutoExecutor(folder=folder, cluster="local")
        executor.update_parameters(timeout_min=params.time_limit, gpus_per_node=params.gpus_per_run)
    return executor


def execute_as_jobs(params: Params, runs: Sequence[StudyRun]) -> tuple[dict[str, str], dict[str, str]]:
    """One submitit job per run (a Slurm job array, or local processes), waited for; the errors and log paths by
    run. A job that was killed or ran out of time leaves a partial run: executing the study again resubmits it and
    it resumes from its last checkpoint."""
    import submitit

    jobs = job_executor(params).map_array(run_one, [run_parameters(params, run) for run in runs])
    names = {job.job_id: run.name for job, run in zip(jobs, runs)}
    print(f"submitted {len(jobs)} jobs ({params.executor}): {', '.join(job.job_id for job in jobs)}")
    errors, logs = {}, {}
    # submitit polls every 10 s, right for a Slurm queue; a local process is asked every second
    poll = 1.0 if params.executor == "submitit_local" else 10.0
    finished = submitit.helpers.as_completed(jobs, poll_frequency=poll)
    for job in tqdm(finished, total=len(jobs), desc="study jobs", unit="job"):
        name = names[job.job_id]
        logs[name] = str(job.paths.stderr)
        try:
            job.result()
        except Exception as err:  # noqa: BLE001 - one failed job must not stop the others; reported below
            raised = [line.strip() for line in str(err).splitlines() if ERROR_LINE.match(line)]
            errors[name] = raised[-1] if raised else _last_line(err)  # the job's own error, not submitit's wrapper
    return errors, logs


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
    run's, or `default_coverage` for a run on the target as it is), and `disc_acc`, the mean camera accuracy of
    the run's discriminators (MMT: one per student; SSG: one per part), so that methods compare in one column."""
    frames = []
    for run in runs:
        folder = RunFolder.for_run(run.name)
        if (folder.path / "metrics.json").is_file():
            history = folder.read_history().drop(columns=["method", "adversary", "mu"], errors="ignore")
            accuracies = history.filter(regex=r"^disc_acc_")
            history["disc_acc"] = accuracies.mean(axis=1) if accuracies.shape[1] else math.nan
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
    "camera_probe_acc": 3,
    "attribute_probe_acc": 3,
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
    "camera_probe_acc": "camera probe",
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
    if "camera_probe_acc" in metrics:
        table["adversary acts"] = table["Method"].map(_adversary_acts(rows))
    for setting, numbers in PAPER_TABLE_IV.items():
        table[f"paper {setting} R1/mAP"] = [f"{numbers[n][0]}/{numbers[n][1]}" for n in table["Method"]]
    return table


ACTING_PROBE_DROP = 0.02  # an adversary acts if it lowers the camera probe by more than this, on average


def _adversary_acts(rows: pd.DataFrame) -> dict[str, str]:
    """Per arm with an adversary, whether it removes camera information, judged by the camera probe against its
    method's baseline (mean over runs): "yes (-0.12)", or "no: a null arm" with the change when the probe moves
    less than ACTING_PROBE_DROP; the baseline's own row says "-"."""
    probe = rows.groupby(["method", "adversary"])["camera_probe_acc"].mean()
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
    ("": none / +Adv. / CANU; "oracle": CANU with the true identities' condition)."""
    return results[
        results["method"].eq(params.coverage_method)
        & results["target_coverage"].isin(params.coverage_grid)
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
    """The fashion sweep's runs: `coverage_method` at the paper's mu, every target_area_fashion of the grid, every
    arm (variant "" or "oracle"), every pair of source models, the seeds of `sweep_seeds`."""
    return results[
        results["method"].eq(params.coverage_method)
        & results["target_area_fashion"].isin(params.fashion_grid)
        & results["target_coverage"].eq(preset_coverage(params))
        & _at_paper_mu(results)
        & results["variant"].fillna("").isin(["", "oracle"])
        & results["seed"].isin(params.sweep_seeds)
    ]


FASHION_METRICS = {
    "target_mAP": "mAP",
    "target_R1": "R1",
    "camera_probe_acc": "camera probe",
    "attribute_probe_acc": "upper-colour probe",
    "ami_pseudo_camera": "adj. MI(pseudo; cam)",
}


def fashion_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per target_area_fashion and arm: each metric as mean ± std over runs, with how many pairs and runs."""
    rows = _with_method_names(rows)
    metrics = {column: label for column, label in FASHION_METRICS.items() if column in rows}
    table = summary_table(rows, ["target_area_fashion", "Method"], metrics)
    pairs = rows.groupby(["target_area_fashion", "Method"], sort=False)["pretrain_seed"].nunique()
    table["pairs"] = [pairs[(f, m)] for f, m in zip(table["target_area_fashion"], table["Method"])]
    table = table.rename(columns={"seeds": "seeds per pair"})
    return _sorted_by_method(table, ("target_area_fashion", "Method"))


def fashion_differences(rows: pd.DataFrame, params: Params) -> list[tuple[Claim, pd.Series]]:
    """The fashion study's claims (docs/study/fashion/README.md, stated before its runs), per (pretrain_seed, seed)
    unit: (a) +Adv.'s gain over the baseline shrinks as fashion grows; (b) CANU - +Adv. rises with fashion and
    exceeds 1 mAP at the largest; (c) the oracle condition does at least as well as CANU; (d) the upper-colour
    probe drops on +Adv.'s features and less on CANU's. With the falsifier: at the largest fashion, the oracle
    condition no better than +Adv. (while (d) says +Adv. erased the attribute). Each per-world difference too."""
    method = params.coverage_method
    names = {a: METHOD_NAMES[(method, a)] for a in ADVERSARIES}
    oracle_name = method_name(method, "canu", "oracle")

    def per_unit(fashion, adversary, metric="target_mAP", variant=""):
        at = rows[rows["target_area_fashion"].eq(fashion)]
        return _per_unit(at, method, adversary, metric, variant)

    values = sorted(set(rows["target_area_fashion"]))
    if not values:
        return []
    low, high = values[0], values[-1]
    out: list[tuple[Claim, pd.Series]] = []
    for fashion in values:
        at = f"at fashion {fashion:g}"
        out += [
            (
                Claim(f"+Adv. improves the baseline {at}", f"{names['adv']} - {names['none']} {at}", "mAP", +1, 1.0),
                per_unit(fashion, "adv") - per_unit(fashion, "none"),
            ),
            (
                Claim(
                    f"CANU is at least as good as +Adv. {at}",
                    f"{names['canu']} - {names['adv']} {at}",
                    "mAP",
                    +1,
                    1.0,
                    "non-inferiority",
                ),
                per_unit(fashion, "canu") - per_unit(fashion, "adv"),
            ),
            (
                Claim(
                    f"diagnostic: the right condition beats +Adv. {at}",
                    f"{oracle_name} - {names['adv']} {at}",
                    "mAP",
                    +1,
                    1.0,
                ),
                per_unit(fashion, "canu", variant="oracle") - per_unit(fashion, "adv"),
            ),
        ]
    if high == low:
        return _measured(out)

    def gain(fashion, better, worse, metric="target_mAP", variant=""):
        return per_unit(fashion, better, metric, variant) - per_unit(fashion, worse, metric)

    span = f"fashion {high:g} - {low:g}"
    probe, at_high = "attribute_probe_acc", f"at fashion {high:g}"
    out += [
        (
            Claim(
                "(a) +Adv.'s gain over the baseline shrinks as looks depend on cameras (negative transfer)",
                f"({names['adv']} - {names['none']}): {span}",
                "mAP",
                -1,
                1.0,
            ),
            gain(high, "adv", "none") - gain(low, "adv", "none"),
        ),
        (
            Claim(
                "(b) CANU - +Adv. rises as looks depend on cameras",
                f"({names['canu']} - {names['adv']}): {span}",
                "mAP",
                +1,
                1.0,
            ),
            gain(high, "canu", "adv") - gain(low, "canu", "adv"),
        ),
        (
            Claim(
                f"(b) CANU beats +Adv. by more than 1 mAP {at_high}",
                f"{names['canu']} - {names['adv']} - 1 {at_high}",
                "mAP",
                +1,
                0.0,
            ),
            gain(high, "canu", "adv") - 1.0,
        ),
        (
            Claim(
                f"(c) the oracle condition does at least as well as CANU {at_high}",
                f"{oracle_name} - {names['canu']} {at_high}",
                "mAP",
                +1,
                1.0,
                "non-inferiority",
            ),
            gain(high, "canu", "canu", variant="oracle"),
        ),
        (
            Claim(
                f"(d) +Adv. erases clothing colour from the features {at_high}",
                f"{names['adv']} - {names['none']}, upper-colour probe {at_high}",
                "probe accuracy",
                -1,
                0.02,
            ),
            gain(high, "adv", "none", probe),
        ),
        (
            Claim(
                f"(d) CANU keeps more clothing colour than +Adv. {at_high}",
                f"{names['canu']} - {names['adv']}, upper-colour probe {at_high}",
                "probe accuracy",
                +1,
                0.02,
            ),
            gain(high, "canu", "adv", probe),
        ),
    ]
    return _measured(out)


def fashion_gaps(rows: pd.DataFrame, params: Params) -> pd.DataFrame:
    """CANU - +Adv. and CANU [oracle condition] - +Adv. in mAP at every target_area_fashion: per comparison and
    world, the mean over units with its t interval (evaluate_claims' columns), for plot_differences_against."""
    method = params.coverage_method
    adv = METHOD_NAMES[(method, "adv")]
    frames = []
    for fashion in sorted(set(rows["target_area_fashion"])):
        at = rows[rows["target_area_fashion"].eq(fashion)]
        against_adv = _per_unit(at, method, "adv", "target_mAP")
        claims = [
            (
                Claim("", f"{method_name(method, 'canu', variant)} - {adv}", "mAP", +1, 1.0),
                _per_unit(at, method, "canu", "target_mAP", variant) - against_adv,
            )
            for variant in ("", "oracle")
        ]
        frames.append(evaluate_claims(_measured(claims)).assign(target_area_fashion=fashion))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


ATTRIBUTE_PROBES = "attribute_probes.json"  # in each run folder: the probes of its last model, computed once


def attribute_probes(params: Params, runs: Iterable[StudyRun], attribute: str = "upper colour") -> pd.DataFrame:
    """Per finished run: `attribute_probe_acc`, what a linear probe reads of the person's `attribute` from the run's
    last model's features of the target training images (cluster.diagnostics.attribute_probe_accuracy: people
    never on both sides of a fold), beside its chance level. Computed once per run (about 40 s on one CPU core) and
    kept in the run folder's attribute_probes.json."""
    from .cluster.diagnostics import attribute_probe_accuracy
    from .data.catalog import load_dataset, target_world
    from .data.records import ids_and_cameras
    from .data.synthetic.readout import record_attribute
    from .engine.adaptation import load_adapted_model, train_set_features

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
            {"run_name": run.name, "attribute_probe_acc": probe["accuracy"], "attribute_chance": probe["chance"]}
        )
    return pd.DataFrame(rows, columns=["run_name", "attribute_probe_acc", "attribute_chance"])


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
    from .data.catalog import load_dataset, target_world
    from .engine.pretrain import load_source_model
    from .engine.ssg import parts_model
    from .evaluate import evaluate

    world = target_world(params) | ({} if target_coverage is None else {"camera_coverage": target_coverage})
    target = load_dataset(params.target, params.data_root, params.world_seed, world)
    model = load_source_model(source_run, params.model_index, params.source_checkpoint)
    evaluated = {"mmt": (model, False), "ssg": (parts_model(model), True)}
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


# ---------------------------------------------------------------- the paper's claims, tested

# Issue 12's bar for a regime where adaptation works: the baseline beats direct transfer by this many mAP.
WORKING_REGIME_GAIN = {"mmt": 5.0, "ssg": 2.0}
# Fewer units (pairs of source models, or seeds of one pair) give no verdict: the interval of one or two
# differences says nothing of the spread between them (one gives a zero-width "interval"), and the sign test
# cannot go below p = 0.25.
MIN_UNITS_FOR_VERDICT = 3
LARGE_MU = 1.8  # Table III's largest weight: CANU-SSG collapses there (2.9 / 17.1 mAP), CANU-MMT holds (69.9 / 81.3)
PAPER_COLLAPSES_AT_LARGE_MU = {"ssg"}


def paired_test(
    differences: Sequence[float],
    direction: int,
    margin: float,
    kind: str = "superiority",
) -> dict[str, Any]:
    """Test a claim on paired differences, one per independent unit (claimed sign `direction`, +1 or -1, in the
    metric's unit):
    the mean, its Student-t 95% confidence interval (n - 1 degrees of freedom), the exact one-sided sign test (how
    likely at least this many seeds agree with the claim if each went either way with probability 1/2; ties
    dropped) and a verdict read from the interval, in the claim's direction d: superiority ("X beats Y"): not
    supported if every d in the CI is below `margin` (no effect that matters, or the opposite); otherwise supported
    if the d-CI lies above 0; inconclusive otherwise. Non-inferiority ("X is at least as good as Y"): supported if
    d-CI > -margin; not supported if d-CI < 0 and reaches -margin; inconclusive otherwise. With fewer than
    MIN_UNITS_FOR_VERDICT units the verdict is "too few units".

    Why t and not a bootstrap: a percentile bootstrap of 3 to 5 seeds resamples only the values seen (normal
    quantiles, the spread shrunk by sqrt((n - 1) / n)), so its interval is 0.4 (3 seeds) to 0.6 (5 seeds) times as
    wide as the t-interval; on four seeds it called SSG+Adv.'s +1.1 mAP over SSG supported with one seed of four
    going the other way."""
    values = np.asarray(differences, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {
            "n": 0,
            "mean": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "agree": "-",
            "sign_p": math.nan,
            "verdict": "not measured",
        }
    mean = float(values.mean())
    spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    half_width = student_t.ppf(0.975, len(values) - 1) * spread / math.sqrt(len(values)) if spread > 0 else 0.0
    low, high = mean - half_width, mean + half_width
    oriented_low, oriented_high = sorted((direction * low, direction * high))
    agree, nonzero = int((direction * values > 0).sum()), int((values != 0).sum())
    sign_p = binomtest(agree, nonzero, 0.5, alternative="greater").pvalue if nonzero else 1.0
    if len(values) < MIN_UNITS_FOR_VERDICT:
        verdict = "too few units"
    elif kind == "superiority":
        verdict = "not supported" if oriented_high < margin else "supported" if oriented_low > 0 else "inconclusive"
    else:
        verdict = "supported" if oriented_low > -margin else "not supported" if oriented_high < 0 else "inconclusive"
    return {
        "n": len(values),
        "mean": mean,
        "ci_low": float(low),
        "ci_high": float(high),
        "agree": f"{agree}/{len(values)}",
        "sign_p": float(sign_p),
        "verdict": verdict,
    }


@dataclass(frozen=True)
class Claim:
    """One claim of the paper as a paired comparison: `direction` is the sign the claim gives the difference,
    `margin` the smallest difference that matters (1 mAP; 0.02 nats of adjusted MI)."""

    claim: str
    comparison: str
    metric: str
    direction: int
    margin: float
    kind: str = "superiority"
    per_pair: bool = False  # measured once per pair whatever the seed (the first clustering): its seeds are one value


def _per_unit(
    frame: pd.DataFrame, method: str, adversary: str, metric: str, variant: str = "", mu: float | None = None
) -> pd.Series:
    rows = frame[
        frame["method"].eq(method) & frame["adversary"].eq(adversary) & frame["variant"].fillna("").eq(variant)
    ]
    if mu is not None and adversary != "none":
        rows = rows[rows["mu"].eq(mu)]
    return rows.groupby(UNIT)[metric].mean()


def claim_differences(
    results: pd.DataFrame, histories: pd.DataFrame, params: Params, direct_mAP: Mapping[str, float] | None = None
) -> list[tuple[Claim, pd.Series]]:
    """Every claim the finished runs can test, with its per-seed differences (seeds of the study that holds the
    comparison: Table IV and the oracle on `seeds`, the sweeps on `sweep_seeds`). With `direct_mAP` (per method,
    direct_transfer's mAP), first whether the regime works: each baseline's gain over direct transfer beyond
    WORKING_REGIME_GAIN."""
    out: list[tuple[Claim, pd.Series]] = []
    plain = results[_plain(results)]
    table_seeds = plain[plain["seed"].isin(params.seeds)]
    first = histories[_plain(histories) & histories["epoch"].eq(0) & histories["seed"].isin(params.seeds)]
    for method in [m for m in METHODS if m in params.methods]:
        mu, name, canu = PAPER_MU[method], METHOD_NAMES[(method, "none")], METHOD_NAMES[(method, "canu")]

        def at_mu(frame, adversary, metric, variant=""):
            return _per_unit(frame, method, adversary, metric, variant, mu)

        if direct_mAP is not None and method in direct_mAP:
            bar = WORKING_REGIME_GAIN[method]
            out.append(
                (
                    Claim(
                        f"the regime works: {name} beats direct transfer by more than {bar:g} mAP (issue 12)",
                        f"{name} - direct transfer - {bar:g}",
                        "mAP",
                        +1,
                        0.0,
                    ),
                    at_mu(table_seeds, "none", "target_mAP") - direct_mAP[method] - bar,
                )
            )

        first_none = first[first["adversary"].eq("none") & first["method"].eq(method)].groupby(UNIT)
        out.append(
            (
                Claim(
                    "the first pseudo-labels carry more camera information than the true identities (Sec. III)",
                    f"{name}, first clustering: pseudo-labels - true ids",
                    "adj. MI (nats)",
                    +1,
                    0.02,
                    per_pair=True,
                ),
                first_none["ami_pseudo_camera"].mean() - first_none["ami_true_camera"].mean(),
            )
        )
        for better, worse, claim, kind in (
            ("adv", "none", "a camera adversary improves the baseline (Table IV)", "superiority"),
            ("canu", "none", "CANU improves the baseline (Table IV)", "superiority"),
            ("canu", "adv", "CANU is at least as good as the plain adversary (Table IV)", "non-inferiority"),
        ):
            out.append(
                (
                    Claim(
                        claim,
                        f"{METHOD_NAMES[(method, better)]} - {METHOD_NAMES[(method, worse)]}",
                        "mAP",
                        +1,
                        1.0,
                        kind,
                    ),
                    at_mu(table_seeds, better, "target_mAP") - at_mu(table_seeds, worse, "target_mAP"),
                )
            )
        for adversary in WITH_ADVERSARY:
            out.append(
                (
                    Claim(
                        "adversarial training lowers the pseudo-labels' camera information (Fig. 3)",
                        f"{METHOD_NAMES[(method, adversary)]} - {name}, last clustering",
                        "adj. MI (nats)",
                        -1,
                        0.02,
                    ),
                    at_mu(table_seeds, adversary, "ami_pseudo_camera")
                    - at_mu(table_seeds, "none", "ami_pseudo_camera"),
                )
            )
        canu_first = at_mu(first, "canu", "ami_pseudo_camera")
        out.append(
            (
                Claim(
                    "the pseudo-labels' camera information falls during training (Fig. 3)",
                    f"{canu}: last - first clustering",
                    "adj. MI (nats)",
                    -1,
                    0.02,
                ),
                at_mu(table_seeds, "canu", "ami_pseudo_camera") - canu_first,
            )
        )
        oracle = at_mu(
            results[results["default_world"] & results["seed"].isin(params.seeds)], "canu", "target_mAP", "oracle"
        )
        for reference, claim, kind in (
            ("none", "diagnostic: CANU conditioned on the true identities improves the baseline", "superiority"),
            ("canu", "diagnostic: the right condition does better than the pseudo-labels' one", "superiority"),
            (
                "adv",
                "diagnostic: with the right condition CANU is at least as good as the plain adversary",
                "non-inferiority",
            ),
        ):
            out.append(
                (
                    Claim(
                        claim, f"{canu} [oracle condition] - {METHOD_NAMES[(method, reference)]}", "mAP", +1, 1.0, kind
                    ),
                    oracle - at_mu(table_seeds, reference, "target_mAP"),
                )
            )
        ablated = results[results["default_world"] & results["seed"].isin(params.sweep_seeds)]
        for variant, claim in (
            ("embedding", "diagnostic (ablation): the discriminators do better reading the embedding"),
            ("uniform", "diagnostic (ablation): the bounded uniform-CE objective does better than Eq. 4's"),
        ):
            out.append(
                (
                    Claim(claim, f"{method_name(method, 'canu', variant)} - {canu}", "mAP", +1, 1.0),
                    at_mu(ablated, "canu", "target_mAP", variant) - at_mu(ablated, "canu", "target_mAP"),
                )
            )
        swept = plain[plain["seed"].isin(params.sweep_seeds)]
        canu_at_large = _per_unit(swept, method, "canu", "target_mAP", mu=LARGE_MU)
        large_against_paper_mu = canu_at_large - at_mu(swept, "canu", "target_mAP")
        comparison = f"{canu} at mu {LARGE_MU:g} - at mu {mu:g}"
        if method in PAPER_COLLAPSES_AT_LARGE_MU:
            out.append(
                (
                    Claim(f"{canu} collapses at mu {LARGE_MU:g} (Table III)", comparison, "mAP", -1, 1.0),
                    large_against_paper_mu,
                )
            )
            out.append(
                (
                    Claim(
                        f"diagnostic: the collapse at mu {LARGE_MU:g} is the conditioning's, not any adversary's "
                        "(Table III)",
                        f"{METHOD_NAMES[(method, 'adv')]} - {canu} at mu {LARGE_MU:g}",
                        "mAP",
                        +1,
                        1.0,
                    ),
                    _per_unit(swept, method, "adv", "target_mAP", mu=LARGE_MU) - canu_at_large,
                )
            )
        else:
            holds = f"{canu} holds at mu {LARGE_MU:g}: at least as good as at mu {mu:g} (Table III)"
            out.append((Claim(holds, comparison, "mAP", +1, 1.0, "non-inferiority"), large_against_paper_mu))
        sweep = swept[swept["mu"].le(0.4)]
        canu_mu = sweep[sweep["method"].eq(method) & sweep["adversary"].eq("canu")]
        if canu_mu["mu"].nunique() > 1:
            spread = canu_mu.groupby(UNIT)["target_mAP"].agg(lambda v: v.max() - v.min())
            out.append(
                (
                    Claim(
                        "CANU's mAP is flat in mu over [0.01, 0.4] (Table III): spread below 2 mAP",
                        f"{canu}: max - min over mu <= 0.4, less 2",
                        "mAP",
                        -1,
                        0.0,
                    ),
                    spread - 2.0,
                )
            )
    coverage = results[
        results["seed"].isin(params.sweep_seeds)
        & results["variant"].fillna("").eq("")
        & _at_paper_mu(results)
        & results["method"].eq(params.coverage_method)
    ]
    if len(coverage) and coverage["target_coverage"].nunique() > 1:
        low = coverage[coverage["target_coverage"].eq(coverage["target_coverage"].min())]
        method, coverage_value = params.coverage_method, coverage["target_coverage"].min()
        per = {a: low[low["adversary"].eq(a)].groupby(UNIT)["target_mAP"].mean() for a in ADVERSARIES}
        out.append(
            (
                Claim(
                    f"a plain adversary transfers negatively where ids are tied to few cameras "
                    f"(coverage {coverage_value:g})",
                    f"{METHOD_NAMES[(method, 'adv')]} - "
                    f"{METHOD_NAMES[(method, 'none')]} at coverage {coverage_value:g}",
                    "mAP",
                    -1,
                    1.0,
                ),
                per["adv"] - per["none"],
            )
        )
        out.append(
            (
                Claim(
                    f"CANU avoids that negative transfer: it beats the plain adversary there "
                    f"(coverage {coverage_value:g})",
                    f"{METHOD_NAMES[(method, 'canu')]} - "
                    f"{METHOD_NAMES[(method, 'adv')]} at coverage {coverage_value:g}",
                    "mAP",
                    +1,
                    1.0,
                ),
                per["canu"] - per["adv"],
            )
        )
        oracle = coverage_rows(results, params, ["oracle"])
        low_oracle = oracle[oracle["target_coverage"].eq(coverage_value)].groupby(UNIT)["target_mAP"].mean()
        out.append(
            (
                Claim(
                    f"diagnostic: with the right condition CANU beats the plain adversary where ids are tied to few "
                    f"cameras (coverage {coverage_value:g})",
                    f"{METHOD_NAMES[(method, 'canu')]} [oracle condition] - "
                    f"{METHOD_NAMES[(method, 'adv')]} at coverage {coverage_value:g}",
                    "mAP",
                    +1,
                    1.0,
                ),
                low_oracle - per["adv"],
            )
        )
        high = coverage[coverage["target_coverage"].eq(coverage["target_coverage"].max())]
        high_value = coverage["target_coverage"].max()
        per_high = {a: high[high["adversary"].eq(a)].groupby(UNIT)["target_mAP"].mean() for a in ADVERSARIES}
        out.append(
            (
                Claim(
                    "CANU's standing against the plain adversary improves where ids are tied to few cameras "
                    "(the reason for conditioning, Sec. III)",
                    f"({METHOD_NAMES[(method, 'canu')]} - {METHOD_NAMES[(method, 'adv')]}) at coverage "
                    f"{coverage_value:g} - at coverage {high_value:g}",
                    "mAP",
                    +1,
                    1.0,
                ),
                (per["canu"] - per["adv"]) - (per_high["canu"] - per_high["adv"]),
            )
        )
    return _measured(out)


def _measured(claims: Iterable[tuple[Claim, pd.Series]]) -> list[tuple[Claim, pd.Series]]:
    """The claims with at least one paired difference, their missing seeds dropped."""
    return [(claim, differences.dropna()) for claim, differences in claims if len(differences.dropna())]


def mu_sweep_differences(results: pd.DataFrame, params: Params) -> list[tuple[Claim, pd.Series]]:
    """Table III's question at every mu of the grid, for each method: is CANU at least as good as the plain
    adversary at the same weight? Per-seed CANU - +Adv. on `sweep_seeds`, a non-inferiority claim (margin 1 mAP)."""
    adversarial, _ = mu_sweep_rows(results, params)
    out = []
    for method in [m for m in METHODS if m in params.methods]:
        adv, canu = METHOD_NAMES[(method, "adv")], METHOD_NAMES[(method, "canu")]
        for mu in params.mu_grid:
            claim = Claim(
                f"CANU is at least as good as the plain adversary at mu {mu:g} (Table III)",
                f"{canu} - {adv} at mu {mu:g}",
                "mAP",
                +1,
                1.0,
                "non-inferiority",
            )
            out.append(
                (
                    claim,
                    _per_unit(adversarial, method, "canu", "target_mAP", mu=mu)
                    - _per_unit(adversarial, method, "adv", "target_mAP", mu=mu),
                )
            )
    return _measured(out)


def claims_table(
    results: pd.DataFrame, histories: pd.DataFrame, params: Params, direct_mAP: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """The paper's claims that the finished runs can test (`claim_differences`), each tested (`evaluate_claims`)."""
    return evaluate_claims(claim_differences(results, histories, params, direct_mAP))


def analysis_units(differences: pd.Series, per_pair: bool = False) -> tuple[np.ndarray, str]:
    """The independent values a claim is tested on, and what they are. Differences indexed by (pretrain_seed,
    seed): with several pairs of source models, each pair's mean over its adaptation seeds (the pair is the unit:
    seeds of one pair share its starting point, so counting them as independent overstates what is known; for a
    balanced design the t interval over pair means is the mixed model's); with one pair, its seeds, said so.
    `per_pair`: a quantity the seeds do not vary (the first clustering of a pair's source models): one value per
    pair, however many seeds repeat it."""
    pairs = differences.index.get_level_values("pretrain_seed") if "pretrain_seed" in differences.index.names else None
    if pairs is not None and (per_pair or pairs.nunique() > 1):
        per = differences.groupby(level="pretrain_seed")
        if per_pair:
            return per.mean().to_numpy(), "pairs (one value each, whatever the seed)"
        seeds = sorted(set(per.size()))
        seeds_text = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
        return per.mean().to_numpy(), f"pairs ({seeds_text} seed{'s' if seeds[-1] > 1 else ''} each)"
    return differences.to_numpy(), "seeds of 1 pair"


def evaluate_claims(claims: Iterable[tuple[Claim, pd.Series]]) -> pd.DataFrame:
    """One row per claim: the comparison, its metric and claimed direction, the unit of analysis
    (`analysis_units`), the mean paired difference with its t 95% CI, how many units agree with the claim, the
    one-sided sign test's p and the verdict (paired_test). Numbers as numbers: `format_claims` writes them for
    reading."""
    rows = []
    for claim, differences in claims:
        values, unit = analysis_units(differences, claim.per_pair)
        test = paired_test(values, claim.direction, claim.margin, claim.kind)
        rows.append(
            {
                "claim": claim.claim,
                "comparison": claim.comparison,
                "metric": claim.metric,
                "direction": claim.direction,
                "margin": claim.margin,
                "unit": unit,
                **test,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "claim",
            "comparison",
            "metric",
            "direction",
            "margin",
            "unit",
            "n",
            "mean",
            "ci_low",
            "ci_high",
            "agree",
            "sign_p",
            "verdict",
        ],
    )


def format_claims(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims table for reading: signed differences (2 decimals for MI, 3 for a probe's accuracy, 1 for mAP) and
    the CI as an interval."""

    def signed(value: float, metric: str) -> str:
        decimals = 2 if "MI" in metric else 3 if "probe" in metric else 1
        return f"{value + 0.0:+.{decimals}f}"

    return pd.DataFrame(
        {
            "claim": claims["claim"],
            "comparison": claims["comparison"],
            "metric": claims["metric"],
            "difference": [signed(v, m) for v, m in zip(claims["mean"], claims["metric"])],
            "95% CI": [
                f"[{signed(lo, m)}, {signed(hi, m)}]"
                for lo, hi, m in zip(claims["ci_low"], claims["ci_high"], claims["metric"])
            ],
            "unit": claims["unit"],
            "agreeing": claims["agree"],
            "sign test p": [f"{p:.3f}" for p in claims["sign_p"]],
            "verdict": claims["verdict"],
        }
    )
