"""The paper's ablations as sweeps of notebook 03: plan the runs, execute the missing ones, gather their results.

A study is a list of adaptation runs, each a recorded notebook 03 in its own run folder named after what it varies
(`<study>-mmt-canu-mu0.1-seed0`), so that two tables needing the same run share it, a finished run (its
`metrics.json` written) is skipped and an interrupted one resumes from its last checkpoint. The named studies:
"table_iv" (none / adv / canu at the paper's mu) and "table_iii" (adv and canu at every mu) are the paper's; ours are
"oracle" (CANU conditioned on the true identities' centroids: a diagnostic, never a method), "coverage" (how strongly
identity and camera are tied in the synthetic target) and "ablation" (what the discriminators read, and a bounded
adversarial objective). `claims_table` tests each of the paper's claims on the paired differences per unit.

Four rooms: `plan` (which runs), `execute` (how many are missing, about how long they take, then running them),
`tables` (collecting results, the tables), `claims` (the paired tests and verdicts)."""

from ..config import STUDY_FIELDS
from .claims import (
    Claim,
    analysis_units,
    claim_differences,
    claims_table,
    evaluate_claims,
    fashion_differences,
    fashion_gaps,
    format_claims,
    mu_sweep_differences,
    paired_test,
)
from .execute import (
    StudyWorkload,
    estimate_minutes,
    execute_study,
    job_executor,
    pretraining_to_run,
    run_one,
    run_state,
    study_workload,
)
from .findings import lab_findings
from .plan import (
    PAPER_MU,
    StudyRun,
    fashion_mus,
    first_table_iv_runs,
    pair_run_name,
    plan_study,
    preset_coverage,
    run_parameters,
    study_pairs,
    study_run,
)
from .tables import (
    arms_with_several_mu,
    attribute_probes,
    collect_histories,
    collect_results,
    coverage_rows,
    coverage_table,
    direct_transfer,
    fashion_rows,
    fashion_table,
    gap_closed,
    mean_std,
    mu_sweep_rows,
    save_table,
    table_iii,
    table_iv,
    table_iv_rows,
    variant_table,
)

__all__ = [
    "Claim",
    "PAPER_MU",
    "STUDY_FIELDS",
    "StudyRun",
    "StudyWorkload",
    "analysis_units",
    "arms_with_several_mu",
    "attribute_probes",
    "claim_differences",
    "claims_table",
    "collect_histories",
    "collect_results",
    "coverage_rows",
    "coverage_table",
    "direct_transfer",
    "estimate_minutes",
    "evaluate_claims",
    "execute_study",
    "fashion_differences",
    "fashion_gaps",
    "fashion_mus",
    "fashion_rows",
    "fashion_table",
    "format_claims",
    "lab_findings",
    "gap_closed",
    "job_executor",
    "mean_std",
    "mu_sweep_differences",
    "mu_sweep_rows",
    "first_table_iv_runs",
    "pair_run_name",
    "paired_test",
    "plan_study",
    "preset_coverage",
    "pretraining_to_run",
    "run_one",
    "run_parameters",
    "run_state",
    "save_table",
    "study_pairs",
    "study_run",
    "study_workload",
    "table_iii",
    "table_iv",
    "table_iv_rows",
    "variant_table",
]
