"""Executing a study: the runs not finished yet, here (in kernels, several at once) or as submitit jobs."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
from tqdm.auto import tqdm

from ..config import Params, make_params
from ..runs import RunFolder, outputs_root, resolve_run
from .plan import StudyRun, run_parameters, study_pairs

# What a study costs on this project's 2-core CPU machine (docs/results.md, "What ran again: `make study`'s default,
# timed"): its 30 runs of the default regime (6 adaptation epochs x 60 iterations) took 92.0 min two at a time, one
# thread each, i.e. 92.0 x 2 / 30 = 6.1 min of one core per run; notebook 01 took 12.4 min (13.5 in the timing
# before it), the worlds' generation included.
RUN_MINUTES = 6.1
RUN_ITERATIONS = 6 * 60
PRETRAIN_MINUTES = 13.0
PRETRAIN_ITERATIONS = 16 * 60  # notebook 01's default: 16 epochs x 60 iterations
# One run at a time gets both cores but does less per minute: two one-threaded runs at once have 1.23x the
# throughput of one two-threaded run (params/study.yaml).
ONE_AT_A_TIME_SLOWDOWN = 1.23


def pretraining_to_run(params: Params) -> list[tuple[int, str]]:
    """(seed, folder) of every pair of source models the study needs and has not finished (no metrics.json):
    notebook 04 runs notebook 01 for each before any adaptation run."""
    pairs = [(params.seed, params.pretrain_run)] + [(seed, folder) for seed, folder in study_pairs(params) if folder]
    return [
        (seed, folder)
        for seed, folder in dict.fromkeys(pairs)
        if not (RunFolder.for_run(folder).path / "metrics.json").is_file()
    ]


def estimate_minutes(
    runs: int,
    parallel_runs: int,
    iterations: int = RUN_ITERATIONS,
    pretraining: int = 0,
    pretrain_iterations: int = PRETRAIN_ITERATIONS,
) -> float:
    """Wall-clock minutes of `runs` adaptation runs of `iterations` iterations each (adapt_epochs x
    adapt_iters_per_epoch), `parallel_runs` at once, after `pretraining` notebook 01 runs of `pretrain_iterations`
    (epochs x iters_per_epoch), on a CPU like this project's (one core per parallel run; parallel_runs 1 on its 2
    cores). Times scale with the iterations. An estimate from one machine's timing, to one decimal: a faster machine
    does better, a shared one worse, and tiny runs take longer than it says (starting a kernel costs seconds)."""
    per_run = RUN_MINUTES * iterations / RUN_ITERATIONS
    if parallel_runs == 1:
        adapting = runs * per_run / 2 * ONE_AT_A_TIME_SLOWDOWN
    else:
        adapting = runs * per_run / parallel_runs
    return round(pretraining * PRETRAIN_MINUTES * pretrain_iterations / PRETRAIN_ITERATIONS + adapting, 1)


@dataclass(frozen=True)
class StudyWorkload:
    """What executing a study will do: its runs, those still to run (new, or partial: counted in full) and the pairs
    of source models to pretrain first, with the estimated time."""

    runs: int
    to_run: int
    pretraining: int
    minutes: float

    def __str__(self) -> str:
        pretraining = f", after {self.pretraining} notebook 01 run(s) for the source models" if self.pretraining else ""
        duration = f"about {self.minutes:.0f} min" if self.minutes >= 1 else "under a minute"
        return (
            f"{self.runs} runs: {self.runs - self.to_run} finished already, {self.to_run} to run{pretraining}; "
            f"estimated time: {duration} (timed on a 2-core CPU; an estimate, not a measurement)"
        )


def study_workload(params: Params, runs: Sequence[StudyRun]) -> StudyWorkload:
    """Count the runs of `runs` not finished yet and the source models not trained yet, and estimate the time they
    take (`estimate_minutes`): what a student should know before starting a study."""
    to_run = sum(run_state(params, run) != "finished" for run in runs)
    pretraining = len(pretraining_to_run(params))
    iterations = params.adapt_epochs * params.adapt_iters_per_epoch
    pretrain_iterations = params.epochs * params.iters_per_epoch
    minutes = estimate_minutes(to_run, params.parallel_runs, iterations, pretraining, pretrain_iterations)
    return StudyWorkload(len(runs), to_run, pretraining, minutes)


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
    """One study run: notebook 03 with these parameters, without its exercises (from a local worker thread, or as a
    submitit job in the job's own process)."""
    from ..notebook import run_notebook

    return str(run_notebook("03_train", parameters=parameters, exercises=False))


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
