"""Planning a study: which notebook 03 runs each named study has, their run folders and parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import ADVERSARIES, METHODS, STUDY_FIELDS, Params, as_dict, make_params
from ..data.catalog import SYNTHETIC_PREFIX, world_spec
from ..data.synthetic.spec import WorldSpec

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


def first_table_iv_runs(params: Params, method: str) -> list[StudyRun]:
    """Table IV's runs of `method` on the first seed of `seeds` and the first pair of source models, one per
    adversary (none, +Adv., CANU), named as plan_study names them: the runs notebook 04 embeds beside their source
    model (`pretrain_run` for a pair other than the study's own)."""
    pair, pretrain_run = study_pairs(params)[0]
    return [
        study_run(params.run_name, method, a, PAPER_MU[method], params.seeds[0], pair=pair, pretrain_run=pretrain_run)
        for a in ADVERSARIES
    ]


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
        return [
            run(m, a, mu, seed, pair, target_area_fashion=value, variant=v)
            for a, v in world_arms
            for mu in fashion_mus(params, a)
        ]

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


def fashion_mus(params: Params, adversary: str) -> list[float]:
    """The weights mu at which the fashion study runs `adversary` (+Adv.: fashion_adv_mu; CANU, and its oracle
    condition: fashion_canu_mu; either empty: the method's paper mu). The baseline has no weight: one run."""
    chosen = {"none": [], "adv": params.fashion_adv_mu, "canu": params.fashion_canu_mu}[adversary]
    return chosen or [PAPER_MU[params.coverage_method]]


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
