"""Studies (notebook 04's sweeps): the plan of runs and their names, when a run is skipped, resumed or refused, and
the tables built from run folders written by hand with known numbers."""

import math

import pandas as pd
import pytest
import yaml

from canu_core.config import make_params
from canu_core.runs import RunFolder, project_root
from canu_core.study import (
    StudyWorkload,
    claims_table,
    collect_histories,
    collect_results,
    coverage_rows,
    coverage_table,
    estimate_minutes,
    evaluate_claims,
    format_claims,
    gap_closed,
    mean_std,
    mu_sweep_differences,
    mu_sweep_rows,
    paired_test,
    plan_study,
    run_parameters,
    run_state,
    save_table,
    study_run,
    study_workload,
    table_iii,
    table_iv,
    variant_table,
)
from canu_core.study import claims as study_claims


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("CANU_OUTPUTS", str(tmp_path))
    return tmp_path


def test_default_plan_shares_runs_between_tables():
    runs = plan_study(make_params(), "s")
    names = [r.name for r in runs]
    assert len(names) == len(set(names))
    # seeds 0-4: Table IV 2 x 3 and the oracle arm 2 x 2 (CANU [oracle], the baseline on the target labels); sweep seeds
    # 0-2 add Table III 2 x 2 x 6 less the 4 runs at the paper's mu, the coverage sweep 3 x 4 (none, +Adv., CANU, CANU
    # [oracle]) less the 4 at the target's own coverage (0.2: Table IV's and the oracle arm's MMT runs) and the
    # ablation's 2 x 2 variants
    assert len(runs) == 5 * (6 + 4) + 3 * (20 + 8 + 4)
    assert {
        "s-mmt-none-seed4",
        "s-mmt-canu-mu0.1-seed2",
        "s-ssg-canu-mu0.05-seed1",
        "s-ssg-adv-mu0.05-seed0",
        "s-ssg-canu-mu1.8-seed0",
        "s-ssg-adv-mu1.8-seed2",
        "s-mmt-adv-mu0.1-cov0.0-seed1",
        "s-mmt-none-cov0.6-seed2",
        "s-mmt-canu-oracle-mu0.1-cov0.0-seed2",
        "s-mmt-canu-oracle-mu0.1-seed4",
        "s-ssg-none-supervised-seed3",
        "s-ssg-canu-embedding-mu0.05-seed2",
        "s-mmt-canu-uniform-mu0.1-seed0",
    } <= set(names)
    assert not any("cov0.2" in name for name in names)
    assert not any(name.endswith(("seed3", "seed4")) for name in names if "mu1.8" in name or "embedding" in name)
    assert sum(r.adversary == "none" for r in runs) == 5 * 2 * 2 + 3 * 2  # each method plain and on target labels
    # study after study in the order of priority: every Table IV run before the oracle arm's own, those before
    # Table III's
    assert names.index("s-ssg-canu-oracle-mu0.05-seed0") > names.index("s-mmt-canu-mu0.1-seed4")
    assert names.index("s-ssg-adv-mu0.01-seed0") > names.index("s-mmt-canu-oracle-mu0.1-seed4")
    oracle = next(r for r in runs if r.variant == "oracle")
    assert oracle.overrides["canu_condition"] == "oracle" and oracle.adversary == "canu"


def test_plan_follows_the_study_parameters():
    params = make_params({"studies": ["table_iii"], "methods": ["mmt"], "mu_grid": [0.1, 0.4], "sweep_seeds": [5]})
    runs = plan_study(params, "x")
    assert [(r.name, r.method, r.adversary, r.mu, r.seed, r.target_coverage) for r in runs] == [
        ("x-mmt-none-seed5", "mmt", "none", 0.1, 5, None),
        ("x-mmt-adv-mu0.1-seed5", "mmt", "adv", 0.1, 5, None),
        ("x-mmt-adv-mu0.4-seed5", "mmt", "adv", 0.4, 5, None),
        ("x-mmt-canu-mu0.1-seed5", "mmt", "canu", 0.1, 5, None),
        ("x-mmt-canu-mu0.4-seed5", "mmt", "canu", 0.4, 5, None),
    ]


def test_named_studies_run_alone():
    runs = plan_study(make_params({"studies": ["oracle"], "methods": ["ssg"], "seeds": [0, 1]}), "o")
    assert [r.name for r in runs] == [
        "o-ssg-none-seed0",
        "o-ssg-canu-mu0.05-seed0",
        "o-ssg-canu-oracle-mu0.05-seed0",
        "o-ssg-none-supervised-seed0",
        "o-ssg-none-seed1",
        "o-ssg-canu-mu0.05-seed1",
        "o-ssg-canu-oracle-mu0.05-seed1",
        "o-ssg-none-supervised-seed1",
    ]
    runs = plan_study(make_params({"studies": ["ablation"], "methods": ["mmt"], "sweep_seeds": [0]}), "a")
    assert [(r.name, r.overrides.get("adversary_features"), r.overrides.get("adversary_objective")) for r in runs] == [
        ("a-mmt-none-seed0", None, None),
        ("a-mmt-canu-mu0.1-seed0", None, None),
        ("a-mmt-canu-embedding-mu0.1-seed0", "embedding", None),
        ("a-mmt-canu-uniform-mu0.1-seed0", None, "uniform_ce"),
    ]
    with pytest.raises(ValueError, match="unknown study variant 'oracles'"):
        study_run("s", "mmt", "canu", 0.1, 0, variant="oracles")


def test_coverage_study_needs_a_synthetic_target():
    with pytest.raises(ValueError, match="synthetic worlds; target is 'dukemtmc'"):
        plan_study(make_params({"target": "dukemtmc", "studies": ["coverage"]}), "s")


def test_run_parameters_drop_the_study_fields_and_set_the_run():
    params = make_params({"adapt_epochs": 4, "seeds": [0, 1]})
    values = run_parameters(params, study_run("s", "ssg", "adv", 0.05, 1, 0.6))
    assert "seeds" not in values and "mu_grid" not in values and "parallel_runs" not in values
    assert (
        values["run_name"],
        values["method"],
        values["adversary"],
        values["mu"],
        values["seed"],
        values["target_coverage"],
        values["adapt_epochs"],
    ) == ("s-ssg-adv-mu0.05-cov0.6-seed1", "ssg", "adv", 0.05, 1, 0.6, 4)


def test_run_state_new_partial_finished_and_foreign(outputs):
    params = make_params()
    run = study_run("s", "mmt", "canu", 0.1, 0)
    assert run_state(params, run) == "new"
    folder = RunFolder.for_run(run.name)
    folder.record(make_params(run_parameters(params, run)), "03_train")
    assert run_state(params, run) == "partial"
    folder.write_metrics({"done": True})
    assert run_state(params, run) == "finished"
    with pytest.raises(ValueError, match="adapt_epochs: 6 there, 3 asked"):
        run_state(make_params({"adapt_epochs": 3}), run)
    recorded = folder.read_params()
    del recorded["umap_figures"]  # as if recorded before the lab had that parameter: it had its default
    folder.params_path.write_text(yaml.safe_dump(recorded))
    assert run_state(params, run) == "finished"
    del recorded["jaccard"]  # recorded before MMT's Jaccard: it computed another distance, not the default's
    folder.params_path.write_text(yaml.safe_dump(recorded))
    with pytest.raises(
        ValueError,
        match=r"jaccard: '\(not recorded: the run predates this parameter\)' there, "
        "'mmt' asked",
    ):
        run_state(params, run)


def test_estimate_scales_the_timed_study():
    """The timing it starts from (docs/results.md: 30 runs of 6 x 60 iterations in 92.0 min two at a time, 6.1 min of
    a core each) comes back, and so do the documented sizes of the other studies."""
    assert estimate_minutes(30, parallel_runs=2) == 91.5  # make study's Table IV, source models trained
    assert estimate_minutes(30, parallel_runs=2, pretraining=1) == 104.5  # from nothing (measured: 105.5)
    assert estimate_minutes(30, parallel_runs=1) == 112.5  # 91.5 x 1.23: one two-threaded run at a time
    assert estimate_minutes(9, parallel_runs=2, iterations=12 * 60) == 54.9  # the length study ("about an hour")
    assert estimate_minutes(0, parallel_runs=2) == 0.0
    assert estimate_minutes(0, parallel_runs=2, pretraining=2, pretrain_iterations=8 * 60) == 13.0  # half as long


def test_workload_counts_missing_runs_and_source_models(outputs):
    params = make_params({"studies": ["table_iv"], "methods": ["mmt"], "seeds": [0, 1], "parallel_runs": 2})
    runs = plan_study(params, "s")
    assert len(runs) == 6
    for run, finished in ((runs[0], True), (runs[1], True), (runs[2], False)):
        folder = RunFolder.for_run(run.name)
        folder.record(make_params(run_parameters(params, run)), "03_train")
        if finished:
            folder.write_metrics({"done": True})
    workload = study_workload(params, runs)
    # the partial run counts in full; the source models (pretrain_run) are missing: 13 + 4 x 6.1 / 2
    assert (workload.runs, workload.to_run, workload.pretraining, workload.minutes) == (6, 4, 1, 25.2)
    assert str(workload).startswith("6 runs: 2 finished already, 4 to run, after 1 notebook 01 run(s)")
    assert "estimated time: about 25 min" in str(workload)
    assert "estimated time: under a minute" in str(StudyWorkload(runs=1, to_run=1, pretraining=0, minutes=0.4))
    RunFolder.for_run(params.pretrain_run).write_metrics({"models": []})
    assert (study_workload(params, runs).pretraining, study_workload(params, runs).minutes) == (0, 12.2)


def write_run(run, last: dict, epochs: int = 2):
    """A finished run folder whose last epoch has the given metrics."""
    folder = RunFolder.for_run(run.name)
    rows = [
        {
            "method": run.method,
            "epoch": e,
            "adversary": run.adversary,
            "mu": run.mu,
            "status": "trained",
            "target_mAP": 0.0,
            "target_R1": 0.0,
            "mi_pseudo_camera": 9.0,
            "mi_true_camera": 0.5,
            "lost_ids": 1,
            "ami_pseudo_camera": 1.0,
            "ami_true_camera": 0.3,
        }
        for e in range(epochs - 1)
    ]
    rows.append(
        {
            "method": run.method,
            "epoch": epochs - 1,
            "adversary": run.adversary,
            "mu": run.mu,
            "status": "trained",
            "mi_true_camera": 0.5,
            "ami_true_camera": 0.3,
            "lost_ids": 0,
            **last,
        }
    )
    pd.DataFrame(rows).to_csv(
        folder.history_path.parent.mkdir(parents=True, exist_ok=True) or folder.history_path, index=False
    )
    folder.write_metrics({"finished": True})


# Last-epoch numbers per (adversary, seed) for MMT: CANU beats the baseline on both seeds, +Adv. on one.
NUMBERS = {
    ("none", 0): (40.0, 20.0, 1.0),
    ("none", 1): (42.0, 22.0, 1.2),
    ("adv", 0): (44.0, 21.0, 0.8),
    ("adv", 1): (40.0, 21.0, 0.9),
    ("canu", 0): (45.0, 24.0, 0.9),
    ("canu", 1): (47.0, 26.0, 1.0),
}


@pytest.fixture
def finished_study(outputs):
    params = make_params(
        {
            "studies": ["table_iv", "table_iii", "coverage"],
            "methods": ["mmt"],
            "seeds": [0, 1],
            "sweep_seeds": [0, 1],
            "mu_grid": [0.1, 0.4],
            "coverage_grid": [0.0, 0.2],
        }
    )
    runs = plan_study(params, "t")
    for run in runs:
        r1, mAP, mi = NUMBERS[(run.adversary, run.seed)]
        if run.mu == 0.4:
            r1, mAP = r1 - 10, mAP - 10
        if run.target_coverage == 0.0:
            r1, mAP = r1 - 20, mAP - 20
        write_run(run, {"target_R1": r1, "target_mAP": mAP, "mi_pseudo_camera": mi, "ami_pseudo_camera": mi - 0.5})
    return params, runs


def test_results_are_the_last_epochs_with_the_run_settings(finished_study):
    params, runs = finished_study
    results = collect_results(runs, default_coverage=0.2)
    assert len(results) == len(runs) == 2 * (3 + 2 + 3 + 2)
    canu = results.set_index("run_name").loc["t-mmt-canu-mu0.1-seed1"]
    assert (canu["target_R1"], canu["target_mAP"], canu["epoch"], canu["target_coverage"]) == (47.0, 26.0, 1, 0.2)
    assert (
        bool(canu["default_world"])
        and not results.set_index("run_name").loc["t-mmt-canu-mu0.1-cov0.0-seed1", "default_world"]
    )


def test_table_iv_means_spreads_and_paper_numbers(finished_study, outputs):
    _, runs = finished_study
    table = table_iv(collect_results(runs, 0.2))
    assert list(table["Method"]) == ["MMT (DBSCAN)", "MMT+Adv.", "CANU-MMT"]
    # std with ddof=1 of two values a, b is |a - b| / sqrt(2)
    assert list(table["R1"]) == ["41.0 ± 1.4", "42.0 ± 2.8", "46.0 ± 1.4"]
    assert list(table["mAP"]) == ["21.0 ± 1.4", "21.0 ± 0.0", "25.0 ± 1.4"]
    assert list(table["MI(pseudo; cam)"]) == ["1.10 ± 0.14", "0.85 ± 0.07", "0.95 ± 0.07"]
    assert list(table["adj. MI(pseudo; cam)"]) == ["0.60 ± 0.14", "0.35 ± 0.07", "0.45 ± 0.07"]
    assert list(table["seeds"]) == [2, 2, 2]
    assert list(table["paper Market->Duke R1/mAP"]) == ["80.2/67.2", "82.6/70.3", "83.3/70.3"]
    markdown = save_table(table, RunFolder.for_run("t"), "table_iv")
    assert "| CANU-MMT     | 46.0 ± 1.4 | 25.0 ± 1.4 |" in markdown
    assert pd.read_csv(outputs / "t" / "tables" / "table_iv.csv")["R1"].tolist() == list(table["R1"])


def test_paired_test_interval_sign_test_and_verdicts():
    test = paired_test([1.0, 2.0, 3.0, 4.0, 5.0], direction=+1, margin=1.0)
    assert (test["n"], test["mean"], test["agree"]) == (5, 3.0, "5/5")
    # Student's t with 4 degrees of freedom: 3 -+ 2.776 x 1.581 / sqrt(5)
    assert (test["ci_low"], test["ci_high"]) == pytest.approx((3.0 - 1.9632, 3.0 + 1.9632), abs=1e-4)
    assert test["sign_p"] == pytest.approx(1 / 32) and test["verdict"] == "supported"
    assert paired_test([1.0, 2.0, 3.0, 4.0, 5.0], direction=-1, margin=1.0)["verdict"] == "not supported"
    tiny = paired_test([0.1, -0.1, 0.2, 0.0], direction=+1, margin=1.0)  # no effect that matters
    assert (tiny["verdict"], tiny["agree"]) == ("not supported", "2/4")
    assert tiny["sign_p"] == pytest.approx(0.5)  # 2 of the 3 non-zero differences agree: P(X >= 2 | 3, 1/2)
    assert paired_test([-2.0, 3.0, 1.5], direction=+1, margin=1.0)["verdict"] == "inconclusive"
    # consistently on the claimed side but too small to matter: not supported
    assert paired_test([0.3, 0.4, 0.5], direction=+1, margin=1.0)["verdict"] == "not supported"
    assert paired_test([-0.5, -0.2, -0.4], +1, 1.0, "non-inferiority")["verdict"] == "supported"
    assert paired_test([-3.0, -2.0, -4.0], +1, 1.0, "non-inferiority")["verdict"] == "not supported"
    assert paired_test([], +1, 1.0)["verdict"] == "not measured"
    one = paired_test([5.0], +1, 1.0)  # a zero-width interval from one seed is no evidence either way
    assert (one["ci_low"], one["ci_high"], one["verdict"]) == (5.0, 5.0, "too few units")
    assert paired_test([5.0, 6.0], +1, 1.0)["verdict"] == "too few units"
    # SSG+Adv. - SSG on the study's first four seeds: 3 of 4 agree; a percentile bootstrap's [+0.2, +2.0] called it
    # supported, the t-interval does not
    four = paired_test([2.5, 0.6, 1.4, -0.2], +1, 1.0)
    assert (round(four["ci_low"], 2), round(four["ci_high"], 2), four["verdict"]) == (-0.76, 2.91, "inconclusive")


def test_claims_table_from_paired_seeds(finished_study, monkeypatch):
    monkeypatch.setattr(study_claims, "MIN_UNITS_FOR_VERDICT", 2)  # the fixture's two seeds: verdicts to check
    params, runs = finished_study
    claims = format_claims(claims_table(collect_results(runs, 0.2), collect_histories(runs, 0.2), params))
    claims = claims.set_index("comparison")
    columns = ["difference", "95% CI", "agreeing", "verdict"]
    assert claims.loc["CANU-MMT - MMT (DBSCAN)", columns].tolist() == ["+4.0", "[+4.0, +4.0]", "2/2", "supported"]
    # +1 and -1 mAP: a standard error of 1, and t with one degree of freedom puts 12.7 of them either side
    assert claims.loc["MMT+Adv. - MMT (DBSCAN)", columns].tolist() == ["+0.0", "[-12.7, +12.7]", "1/2", "inconclusive"]
    # +3 and +5 mAP: with two seeds t's interval is [-8.7, +16.7], which reaches below the non-inferiority margin
    assert claims.loc["CANU-MMT - MMT+Adv.", ["95% CI", "verdict"]].tolist() == ["[-8.7, +16.7]", "inconclusive"]
    assert claims.loc["CANU-MMT - MMT+Adv. at coverage 0", "verdict"] == "inconclusive"
    assert claims.loc["MMT+Adv. - MMT (DBSCAN) at coverage 0", "verdict"] == "inconclusive"
    # every coverage-0 run is its default-world run less 20 mAP: CANU's standing against +Adv. does not change
    interaction = claims.loc["(CANU-MMT - MMT+Adv.) at coverage 0 - at coverage 0.2", columns]
    assert interaction.tolist() == ["+0.0", "[+0.0, +0.0]", "0/2", "not supported"]
    # the first clustering is the pair's, whatever the adaptation seed: two seeds repeat one value, no verdict
    assert claims.loc["MMT (DBSCAN), first clustering: pseudo-labels - true ids", columns].tolist() == [
        "+0.70",
        "[+0.70, +0.70]",
        "1/1",
        "too few units",
    ]
    assert claims.loc["MMT+Adv. - MMT (DBSCAN), last clustering", ["difference", "95% CI", "verdict"]].tolist() == [
        "-0.25",
        "[-0.89, +0.39]",
        "inconclusive",
    ]
    assert claims.loc["CANU-MMT: last - first clustering", "difference"] == "-0.55"
    flat = claims.loc["CANU-MMT: max - min over mu <= 0.4, less 2"]
    assert (flat["difference"], flat["verdict"]) == ("+8.0", "not supported")  # 10 mAP between mu 0.1 and 0.4
    # the coverage sweep's oracle runs (4 and 6 mAP at coverage 0) against +Adv. there (1 and 1)
    oracle_low = claims.loc["CANU-MMT [oracle condition] - MMT+Adv. at coverage 0", columns]
    assert oracle_low.tolist() == ["+4.0", "[-8.7, +16.7]", "2/2", "inconclusive"]
    assert not claims.index.str.contains("direct transfer").any()  # no direct transfer given
    working = format_claims(
        claims_table(collect_results(runs, 0.2), collect_histories(runs, 0.2), params, direct_mAP={"mmt": 14.0})
    ).set_index("comparison")
    # MMT (DBSCAN) at 20 and 22 mAP: 6 and 8 above direct transfer, 1 and 3 beyond the bar of 5
    assert working.loc["MMT (DBSCAN) - direct transfer - 5", ["difference", "95% CI", "verdict"]].tolist() == [
        "+2.0",
        "[-10.7, +14.7]",
        "inconclusive",
    ]


def test_variant_tables_show_the_oracle_beside_canu(outputs, monkeypatch):
    monkeypatch.setattr(study_claims, "MIN_UNITS_FOR_VERDICT", 2)  # two seeds: a verdict to check
    params = make_params({"studies": ["table_iv", "oracle"], "methods": ["mmt"], "seeds": [0, 1]})
    runs = plan_study(params, "v")
    for run in runs:
        mAP = (
            {"none": 20.0, "adv": 28.5, "canu": 22.0}[run.adversary]
            + (5.0 if run.variant == "oracle" else 0.0)
            + (30.0 if run.variant == "supervised" else 0.0)
            + run.seed
        )
        write_run(run, {"target_R1": mAP, "target_mAP": mAP, "mi_pseudo_camera": 1.0, "ami_pseudo_camera": 0.5})
    results = collect_results(runs, 0.2)
    table = variant_table(results, ["oracle", "supervised"], params.seeds)
    assert table[["Method", "mAP", "seeds"]].values.tolist() == [
        ["MMT (DBSCAN)", "20.5 ± 0.7", 2],
        ["MMT (DBSCAN) [target labels: upper bound]", "50.5 ± 0.7", 2],
        ["CANU-MMT", "22.5 ± 0.7", 2],
        ["CANU-MMT [oracle condition]", "27.5 ± 0.7", 2],
    ]
    assert RunFolder.for_run("v-mmt-none-supervised-seed1").path.name in set(results["run_name"])
    # from direct transfer's 10.0 to the target labels' 50.5: 40.5 mAP of way, of which each arm covers its part
    gaps = gap_closed(results, {"mmt": 10.0}, params.seeds)
    assert gaps[["Method", "mAP", "gap closed"]].values.tolist() == [
        ["MMT (DBSCAN)", "20.5", "26%"],
        ["MMT+Adv.", "29.0", "47%"],
        ["CANU-MMT", "22.5", "31%"],
    ]
    assert gap_closed(results, {"ssg": 10.0}, params.seeds).empty  # no SSG runs, no row
    claims = format_claims(claims_table(results, collect_histories(runs, 0.2), params)).set_index("comparison")
    assert claims.loc["CANU-MMT [oracle condition] - CANU-MMT", ["difference", "verdict"]].tolist() == [
        "+5.0",
        "supported",
    ]
    # 27 and 28 against the plain adversary's 28.5 and 29.5: 1.5 below on both seeds, past the margin of 1
    assert claims.loc["CANU-MMT [oracle condition] - MMT+Adv.", ["difference", "95% CI", "verdict"]].tolist() == [
        "-1.5",
        "[-1.5, -1.5]",
        "not supported",
    ]


def test_ablation_claims_pair_each_variant_with_canu_as_it_is(outputs, monkeypatch):
    monkeypatch.setattr(study_claims, "MIN_UNITS_FOR_VERDICT", 2)
    params = make_params({"studies": ["ablation"], "methods": ["mmt"], "sweep_seeds": [0, 1]})
    runs = plan_study(params, "a")
    variant_mAP = {"": 30.0, "embedding": 30.5, "uniform": 34.0}
    for run in runs:
        mAP = 20.0 if run.adversary == "none" else variant_mAP[run.variant] + (2.0 if run.seed else 0.0)
        write_run(run, {"target_R1": mAP, "target_mAP": mAP, "mi_pseudo_camera": 1.0, "ami_pseudo_camera": 0.5})
    claims = format_claims(claims_table(collect_results(runs), collect_histories(runs), params))
    claims = claims.set_index("comparison")
    columns = ["difference", "95% CI", "agreeing", "verdict"]
    # the same difference on both seeds: an interval of no width, a verdict by the 1-mAP margin
    embedding = claims.loc["CANU-MMT [D reads the embedding] - CANU-MMT", columns].tolist()
    assert embedding == ["+0.5", "[+0.5, +0.5]", "2/2", "not supported"]
    uniform = claims.loc["CANU-MMT [uniform-CE objective] - CANU-MMT", columns].tolist()
    assert uniform == ["+4.0", "[+4.0, +4.0]", "2/2", "supported"]


# Last-epoch mAP of the mu sweep on seed 0 (seed 1: one more everywhere, so every paired difference is the same on
# both seeds): CANU-SSG collapses at mu 1.8 and the plain adversary does not; CANU-MMT holds there.
SWEEP_MAP = {
    ("ssg", "adv"): {0.05: 50.0, 0.1: 51.0, 1.8: 49.0},
    ("ssg", "canu"): {0.05: 50.5, 0.1: 49.5, 1.8: 30.0},
    ("mmt", "adv"): {0.05: 55.0, 0.1: 58.0, 1.8: 50.0},
    ("mmt", "canu"): {0.05: 54.5, 0.1: 56.0, 1.8: 56.5},
}


def test_mu_sweep_differences_and_the_large_mu_claims(outputs, monkeypatch):
    monkeypatch.setattr(study_claims, "MIN_UNITS_FOR_VERDICT", 2)
    params = make_params(
        {"studies": ["table_iii"], "methods": ["ssg", "mmt"], "sweep_seeds": [0, 1], "mu_grid": [0.05, 0.1, 1.8]}
    )
    runs = plan_study(params, "m")
    for run in runs:
        mAP = (45.0 if run.adversary == "none" else SWEEP_MAP[(run.method, run.adversary)][run.mu]) + run.seed
        write_run(run, {"target_R1": mAP, "target_mAP": mAP, "mi_pseudo_camera": 1.0, "ami_pseudo_camera": 0.5})
    results = collect_results(runs)
    per_mu = format_claims(evaluate_claims(mu_sweep_differences(results, params))).set_index("comparison")
    assert list(per_mu.index) == [
        "CANU-SSG - SSG+Adv. at mu 0.05",
        "CANU-SSG - SSG+Adv. at mu 0.1",
        "CANU-SSG - SSG+Adv. at mu 1.8",
        "CANU-MMT - MMT+Adv. at mu 0.05",
        "CANU-MMT - MMT+Adv. at mu 0.1",
        "CANU-MMT - MMT+Adv. at mu 1.8",
    ]
    # non-inferiority with a margin of 1: half a point behind is "at least as good", 1.5 or 2 behind is not
    assert per_mu[["difference", "95% CI", "agreeing", "verdict"]].values.tolist() == [
        ["+0.5", "[+0.5, +0.5]", "2/2", "supported"],
        ["-1.5", "[-1.5, -1.5]", "0/2", "not supported"],
        ["-19.0", "[-19.0, -19.0]", "0/2", "not supported"],
        ["-0.5", "[-0.5, -0.5]", "0/2", "supported"],
        ["-2.0", "[-2.0, -2.0]", "0/2", "not supported"],
        ["+6.5", "[+6.5, +6.5]", "2/2", "supported"],
    ]
    claims = format_claims(claims_table(results, collect_histories(runs), params)).set_index("comparison")
    columns = ["difference", "agreeing", "verdict"]
    # the paper's CANU-SSG falls from 57.0 to 2.9 mAP at mu 1.8; here from 50.5 to 30
    assert claims.loc["CANU-SSG at mu 1.8 - at mu 0.05", columns].tolist() == ["-20.5", "2/2", "supported"]
    assert claims.loc["SSG+Adv. - CANU-SSG at mu 1.8", columns].tolist() == ["+19.0", "2/2", "supported"]
    # the paper's CANU-MMT holds (69.9 at 1.8 against 70.3 at 0.1): a non-inferiority claim, 56.5 against 56 here
    holds = claims.loc["CANU-MMT at mu 1.8 - at mu 0.1"]
    assert (holds["difference"], holds["verdict"]) == ("+0.5", "supported")
    assert "at least as good as at mu 0.1" in holds["claim"]
    assert not claims.index.str.contains("MMT+Adv. - CANU-MMT at mu 1.8").any()  # no collapse claimed for MMT


def test_table_iii_and_coverage_table(finished_study):
    params, runs = finished_study
    results = collect_results(runs, 0.2)
    iii = table_iii(results, params.mu_grid)
    assert iii[["Method", "mu", "mAP"]].values.tolist() == [
        ["MMT+Adv.", 0.1, "21.0 ± 0.0"],
        ["MMT+Adv.", 0.4, "11.0 ± 0.0"],
        ["CANU-MMT", 0.1, "25.0 ± 1.4"],
        ["CANU-MMT", 0.4, "15.0 ± 1.4"],
    ]
    assert list(iii["paper Market->Duke R1/mAP"]) == ["-", "-", "83.3/70.3", "82.5/70.3"]
    coverage = coverage_table(results, params)
    assert coverage[["target_coverage", "Method", "mAP"]].values.tolist() == [
        [0.0, "MMT (DBSCAN)", "1.0 ± 1.4"],
        [0.0, "MMT+Adv.", "1.0 ± 0.0"],
        [0.0, "CANU-MMT", "5.0 ± 1.4"],
        [0.0, "CANU-MMT [oracle condition]", "5.0 ± 1.4"],
        [0.2, "MMT (DBSCAN)", "21.0 ± 1.4"],
        [0.2, "MMT+Adv.", "21.0 ± 0.0"],
        [0.2, "CANU-MMT", "25.0 ± 1.4"],
        [0.2, "CANU-MMT [oracle condition]", "25.0 ± 1.4"],
    ]
    # a fashion-sweep run sits at the target's own coverage in another world: it is not a row of the coverage sweep
    fashion_run = (
        results[results["default_world"]]
        .iloc[[0]]
        .assign(run_name="s-fashion", default_world=False, target_area_fashion=1.0)
    )
    with_fashion = pd.concat([results, fashion_run], ignore_index=True)
    pd.testing.assert_frame_equal(coverage_table(with_fashion, params), coverage)
    # a study of a real target has no coverage sweep: its claims' rows ask for none, and nothing fails
    real = make_params({"target": "dukemtmc"})
    assert coverage_rows(results.assign(target_coverage=math.nan), real).empty
    adversarial, baselines = mu_sweep_rows(results, params)  # what the mu figure draws: the table's runs
    table_runs = list(zip(iii["Method"].map({"MMT+Adv.": "adv", "CANU-MMT": "canu"}), iii["mu"]))
    assert sorted(zip(adversarial["adversary"], adversarial["mu"])) == sorted(table_runs * 2)  # two sweep seeds
    assert set(baselines["adversary"]) == {"none"} and baselines["default_world"].all()
    assert len(baselines) == baselines["seed"].nunique()


def test_mean_std_format():
    assert mean_std(pd.Series([1.0, 3.0])) == "2.0 ± 1.4"
    assert mean_std(pd.Series([-0.04])) == "0.0"  # never "-0.0"
    assert mean_std(pd.Series([0.123, float("nan")]), decimals=2) == "0.12"
    assert mean_std(pd.Series([float("nan")])) == "-"


def test_table_iv_shows_the_adversarys_judge_where_runs_recorded_it(outputs):
    params = make_params({"studies": ["table_iv"], "methods": ["mmt"], "seeds": [0, 1]})
    runs = plan_study(params, "j")
    probe = {"none": 0.95, "adv": 0.80, "canu": 0.90}
    for run in runs:
        write_run(
            run,
            {
                "target_R1": 50.0,
                "target_mAP": 30.0,
                "camera_probe_accuracy": probe[run.adversary] + 0.01 * run.seed,
                "camera_identity_alone": 0.351,
                **({} if run.adversary == "none" else {"disc_acc_1": 0.4, "disc_acc_2": 0.6}),
            },
        )
    table = table_iv(collect_results(runs, 0.2)).set_index("Method")
    assert table.loc["MMT+Adv.", ["camera probe", "D's camera acc.", "identity-alone level"]].tolist() == [
        "0.805 ± 0.007",
        "0.500 ± 0.000",
        "0.351 ± 0.000",
    ]
    assert table.loc["MMT (DBSCAN)", "D's camera acc."] == "-"  # no discriminator without an adversary
    # the probe moves 0.15 under +Adv. (an adversary that acts), 0.05 under CANU; a null arm is named as one
    assert table["adversary acts"].tolist() == ["-", "yes (-0.150)", "yes (-0.050)"]
    for run in runs:
        if run.adversary == "canu":
            write_run(run, {"target_R1": 50.0, "target_mAP": 30.0, "camera_probe_accuracy": 0.95 + 0.01 * run.seed})
    acts = table_iv(collect_results(runs, 0.2)).set_index("Method")["adversary acts"]
    assert acts["CANU-MMT"] == "no: a null arm (+0.000)"


def test_the_claims_evaluator_reads_arms_per_unit_and_their_differences():
    """study.claims' declarative rows: an Arm is one value per (pair, seed) unit of its runs (at the method's paper
    mu unless told), a Difference subtracts per unit, a number stays a number, a Spread is max - min over mu."""
    from canu_core.study.claims import Arm, Claim, Spread, measured, unit_values

    rows = pd.DataFrame(
        [
            # method, adversary, variant, mu, pretrain_seed, seed, target_mAP
            ("mmt", "none", "", 0.1, 1, 0, 40.0),
            ("mmt", "none", "", 0.1, 1, 1, 42.0),
            ("mmt", "canu", "", 0.1, 1, 0, 45.0),
            ("mmt", "canu", "", 0.1, 1, 1, 44.0),
            ("mmt", "canu", "", 1.8, 1, 0, 41.0),
            ("mmt", "canu", "", 1.8, 1, 1, 30.0),
            ("mmt", "canu", "oracle", 0.1, 1, 0, 47.0),
        ],
        columns=["method", "adversary", "variant", "mu", "pretrain_seed", "seed", "target_mAP"],
    )
    frames = {"table": rows}
    gain = unit_values(Arm("mmt", "canu") - Arm("mmt", "none"), frames)
    assert gain.to_dict() == {(1, 0): 5.0, (1, 1): 2.0}
    assert unit_values(Arm("mmt", "canu", mu=1.8) - 1.0, frames).to_dict() == {(1, 0): 40.0, (1, 1): 29.0}
    assert unit_values(Spread(Arm("mmt", "canu"), 0.4), frames).empty  # one mu up to 0.4: no spread
    assert unit_values(Spread(Arm("mmt", "canu"), 2.0), frames).to_dict() == {(1, 0): 4.0, (1, 1): 14.0}
    oracle = Arm("mmt", "canu", variant="oracle") - Arm("mmt", "canu")
    claims = [
        Claim("c", "oracle - canu", "mAP", +1, 1.0, difference=oracle),
        Claim("never ran", "x", "mAP", +1, 1.0, difference=Arm("ssg", "adv") - Arm("ssg", "none")),
    ]
    ((claim, differences),) = measured(claims, frames)  # the claim no run measures is left out
    assert claim.comparison == "oracle - canu" and differences.to_dict() == {(1, 0): 2.0}  # seed 1 has no oracle


def test_lab_findings_read_the_committed_claims_and_filter_them():
    from canu_core import lab_findings

    committed = [
        pd.read_csv(project_root() / path, dtype=str)
        for path in (
            "docs/study/tables/claims.csv",
            "docs/study/fashion/tables/claims.csv",
            "docs/study/fashion/best_mu/tables/claims.csv",
        )
    ]
    everything = lab_findings()
    assert len(everything) == sum(len(table) for table in committed)
    assert list(everything.columns) == ["study", "claim", "difference", "95% CI", "unit", "verdict"]
    both = pd.concat(committed, ignore_index=True)
    mentions = (both["claim"] + " " + both["comparison"]).str.lower().str.contains("canu")
    assert 0 < mentions.sum() < len(both)
    assert lab_findings("CANU")["claim"].tolist() == both.loc[mentions, "claim"].tolist()
