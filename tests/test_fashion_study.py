"""The fashion study and pairs of source models as the unit of analysis: the plan of runs, the pair-level
reduction of every claim, the fashion claims on results with known numbers, and the attribute probe."""

import numpy as np
import pandas as pd
import pytest

from canu_core.cluster.diagnostics import attribute_probe_accuracy
from canu_core.config import make_params
from canu_core.data.catalog import load_dataset
from canu_core.data.records import ids_and_cameras
from canu_core.data.synthetic.readout import READOUT_ATTRIBUTES, dataset_plan, record_attribute
from canu_core.study import (
    Claim,
    analysis_units,
    arms_with_several_mu,
    evaluate_claims,
    fashion_differences,
    fashion_gaps,
    fashion_rows,
    fashion_table,
    first_table_iv_runs,
    format_claims,
    pair_run_name,
    plan_study,
)


def fashion_params(**values):
    return make_params(
        {
            "studies": ["fashion"],
            "sweep_seeds": [0],
            "pretrain_seeds": [1, 3],
            "fashion_grid": [1.0, 0.0],
            "seed": 1,  # notebook 04's: the pretraining seed whose pair is pretrain_run itself
            **values,
        }
    )


def test_the_fashion_plan_runs_each_world_over_every_pair_in_the_grids_order():
    runs = plan_study(fashion_params(), "f")
    names = [r.name for r in runs]
    assert names[:4] == [
        "f-mmt-none-fashion1.0-pair1-seed0",
        "f-mmt-adv-mu0.1-fashion1.0-pair1-seed0",
        "f-mmt-canu-mu0.1-fashion1.0-pair1-seed0",
        "f-mmt-canu-oracle-mu0.1-fashion1.0-pair1-seed0",
    ]
    assert names[4:8] == [n.replace("pair1", "pair3") for n in names[:4]]
    # lambda 0 is the target's own: those runs are the default world's, named without it
    assert names[8:] == [n.replace("-fashion1.0", "") for n in names[:8]]
    first, third = runs[0].overrides, runs[5].overrides
    assert (first["pretrain_run"], first["target_area_fashion"], first["seed"]) == ("pretrain", 1.0, 0)
    assert (third["pretrain_run"], third["adversary"]) == ("pretrain-seed3", "adv")
    assert runs[8].overrides["target_area_fashion"] is None
    assert [r.pair for r in runs[:8]] == [1] * 4 + [3] * 4


def test_each_fashion_arm_runs_at_its_own_mu():
    """A validation sweep runs every arm at several weights; the study then each at its chosen one. The baseline has
    no weight: one run whatever the lists."""
    sweep = fashion_params(fashion_grid=[1.0], pretrain_seeds=[1], fashion_adv_mu=[0.1, 0.4], fashion_canu_mu=[1.0])
    assert [r.name for r in plan_study(sweep, "v")] == [
        "v-mmt-none-fashion1.0-pair1-seed0",
        "v-mmt-adv-mu0.1-fashion1.0-pair1-seed0",
        "v-mmt-adv-mu0.4-fashion1.0-pair1-seed0",
        "v-mmt-canu-mu1.0-fashion1.0-pair1-seed0",
        "v-mmt-canu-oracle-mu1.0-fashion1.0-pair1-seed0",
    ]
    results = fashion_results().assign(mu=0.4)
    chosen = fashion_params(pretrain_seeds=[1, 3, 5], sweep_seeds=[0, 1], fashion_adv_mu=[0.4], fashion_canu_mu=[0.4])
    assert len(fashion_rows(results, chosen)) == 8 * 3 * 2
    assert set(fashion_rows(results, fashion_params())["adversary"]) == {"none"}  # at the paper's 0.1: none ran
    several = fashion_params(pretrain_seeds=[1, 3, 5], sweep_seeds=[0, 1], fashion_adv_mu=[0.1, 0.4])
    two_weights = pd.concat([fashion_results(), fashion_results().assign(mu=0.4)])
    swept = fashion_rows(two_weights, several)
    assert arms_with_several_mu(swept) == {"MMT+Adv.": [0.1, 0.4]}
    with pytest.raises(ValueError, match=r"one mu per arm; found \{'MMT\+Adv.': \[0.1, 0.4\]\}"):
        fashion_differences(swept, several)
    table = fashion_table(swept).set_index(["target_area_fashion", "Method", "mu"])  # the sweep's table: per mu
    assert table.loc[(1.0, "MMT+Adv.", 0.4), "mAP"] == "40.9 ± 2.3"
    assert table.loc[(1.0, "CANU-MMT", 0.1), "pairs"] == 3
    assert table.loc[(1.0, "MMT (DBSCAN)", "-"), "pairs"] == 3  # the baseline: no mu


def test_a_pairs_folder_is_pretrain_run_for_the_studys_own_seed():
    params = make_params({"seed": 1, "pretrain_run": "src"})
    assert (pair_run_name(params, 1), pair_run_name(params, 5)) == ("src", "src-seed5")


def test_without_pretrain_seeds_the_plan_and_its_run_names_are_as_before():
    runs = plan_study(make_params({"studies": ["table_iv"], "seeds": [0]}), "s")
    assert [r.name for r in runs][:2] == ["s-ssg-none-seed0", "s-ssg-adv-mu0.05-seed0"]
    assert all("pretrain_run" not in r.overrides and r.pair == 0 for r in runs)  # the pair of the study's seed


def test_the_runs_notebook_04_embeds_are_planned_runs_of_the_first_pair():
    """Notebook 04 embeds Table IV's runs of one seed beside their source model: with several pairs, those of the
    first pair, named with it (a study of Table IV over pairs has no run without a pair in its name)."""
    several = make_params(
        {"run_name": "s", "studies": ["table_iv"], "seeds": [2, 0], "pretrain_seeds": [3, 1], "seed": 1}
    )
    shown = first_table_iv_runs(several, "mmt")
    assert [r.name for r in shown] == [
        "s-mmt-none-pair3-seed2",
        "s-mmt-adv-mu0.1-pair3-seed2",
        "s-mmt-canu-mu0.1-pair3-seed2",
    ]
    assert {r.name for r in shown} <= {r.name for r in plan_study(several, several.run_name)}
    assert {r.overrides["pretrain_run"] for r in shown} == {"pretrain-seed3"}
    one = make_params({"run_name": "s", "studies": ["table_iv"], "seeds": [0]})
    assert [r.name for r in first_table_iv_runs(one, "ssg")] == [
        "s-ssg-none-seed0",
        "s-ssg-adv-mu0.05-seed0",
        "s-ssg-canu-mu0.05-seed0",
    ]
    assert {r.name for r in first_table_iv_runs(one, "ssg")} <= {r.name for r in plan_study(one, one.run_name)}


def test_several_pairs_make_the_pair_the_unit_and_one_pair_its_seeds():
    index = pd.MultiIndex.from_tuples([(1, 0), (1, 1), (3, 0), (3, 1), (5, 0), (5, 1)], names=["pretrain_seed", "seed"])
    values, unit = analysis_units(pd.Series([1.0, 3.0, 5.0, 7.0, -1.0, 1.0], index=index))
    assert (values.tolist(), unit) == ([2.0, 6.0, 0.0], "pairs (2 seeds each)")
    one = pd.MultiIndex.from_tuples([(1, 0), (1, 1), (1, 2)], names=["pretrain_seed", "seed"])
    values, unit = analysis_units(pd.Series([1.0, 3.0, 5.0], index=one))
    assert (values.tolist(), unit) == ([1.0, 3.0, 5.0], "seeds of 1 pair")
    # the first clustering does not depend on the adaptation seed: three seeds of one pair are one measurement
    repeated = pd.Series([0.5] * 3, index=one)
    values, unit = analysis_units(repeated, per_pair=True)
    assert (values.tolist(), unit) == ([0.5], "pairs (one value each, whatever the seed)")
    claim = Claim("first", "pseudo - true", "adj. MI (nats)", +1, 0.02, per_pair=True)
    tested = evaluate_claims([(claim, repeated)]).iloc[0]
    assert (tested["n"], tested["verdict"]) == (1, "too few units")  # not p = 0.125 from three copies


# Last-epoch mAP per (lambda, arm), and each pair's offset: every pair moves every arm alike, so the paired
# differences are exact; the upper-colour probe per arm.
MAP = {
    (0.0, "none"): 40.0,
    (0.0, "adv"): 44.0,
    (0.0, "canu"): 44.5,
    (0.0, "oracle"): 45.0,
    (1.0, "none"): 40.0,
    (1.0, "adv"): 41.0,
    (1.0, "canu"): 43.5,
    (1.0, "oracle"): 44.0,
}
PROBE = {"none": 0.60, "adv": 0.45, "canu": 0.52, "oracle": 0.55}
PAIR_OFFSET = {1: 0.0, 3: 2.0, 5: -3.0}


def fashion_results(seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for (fashion, arm), mAP in MAP.items():
        for pair, offset in PAIR_OFFSET.items():
            for seed in seeds:
                rows.append(
                    {
                        "run_name": f"{arm}-{fashion}-{pair}-{seed}",
                        "method": "mmt",
                        "adversary": "canu" if arm == "oracle" else arm,
                        "variant": "oracle" if arm == "oracle" else "",
                        "mu": 0.1,
                        "pretrain_seed": pair,
                        "seed": seed,
                        "target_coverage": 0.2,
                        "target_area_fashion": fashion,
                        "target_mAP": mAP + offset + 0.5 * seed,
                        "target_R1": 60.0,
                        "attribute_probe_accuracy": PROBE[arm],
                    }
                )
    return pd.DataFrame(rows)


def test_fashion_claims_are_pair_level_differences():
    params = fashion_params(pretrain_seeds=[1, 3, 5], sweep_seeds=[0, 1])
    rows = fashion_rows(fashion_results(seeds=(0, 1, 2)), params)
    assert len(rows) == 8 * 3 * 2  # seed 2 is not one of the sweep's seeds
    claims = evaluate_claims(fashion_differences(rows, params)).set_index("comparison")
    assert set(claims["unit"]) == {"pairs (2 seeds each)"} and set(claims["n"]) == {3}
    assert claims.loc["MMT+Adv. - MMT (DBSCAN) at fashion 0", "mean"] == pytest.approx(4.0)
    assert claims.loc["(MMT+Adv. - MMT (DBSCAN)): fashion 1 - 0", "mean"] == pytest.approx(-3.0)
    assert claims.loc["(CANU-MMT - MMT+Adv.): fashion 1 - 0", "mean"] == pytest.approx(2.0)
    assert claims.loc["CANU-MMT - MMT+Adv. - 1 at fashion 1", "mean"] == pytest.approx(1.5)
    assert claims.loc["CANU-MMT [oracle condition] - CANU-MMT at fashion 1", "mean"] == pytest.approx(0.5)
    adv_probe = claims.loc["MMT+Adv. - MMT (DBSCAN), upper-colour probe at fashion 1"]
    assert (adv_probe["mean"], adv_probe["direction"]) == (pytest.approx(-0.15), -1)
    readable = format_claims(claims.reset_index()).set_index("comparison")
    assert readable.loc["MMT+Adv. - MMT (DBSCAN), upper-colour probe at fashion 1", "difference"] == "-0.150"
    # identical differences in every pair: a zero-width interval, and each verdict follows from the mean alone
    assert claims.loc["(MMT+Adv. - MMT (DBSCAN)): fashion 1 - 0", "verdict"] == "supported"
    assert claims.loc["CANU-MMT [oracle condition] - CANU-MMT at fashion 1", "verdict"] == "supported"
    gaps = fashion_gaps(rows, params)
    assert gaps[["target_area_fashion", "comparison", "mean"]].values.tolist() == [
        [0.0, "CANU-MMT - MMT+Adv.", pytest.approx(0.5)],
        [0.0, "CANU-MMT [oracle condition] - MMT+Adv.", pytest.approx(1.0)],
        [1.0, "CANU-MMT - MMT+Adv.", pytest.approx(2.5)],
        [1.0, "CANU-MMT [oracle condition] - MMT+Adv.", pytest.approx(3.0)],
    ]
    table = fashion_table(rows).set_index(["target_area_fashion", "Method"])
    assert table.loc[(1.0, "MMT+Adv."), ["pairs", "seeds per pair"]].tolist() == [3, 2]
    assert table.loc[(1.0, "MMT+Adv."), "upper-colour probe"] == "0.450 ± 0.000"


def test_the_attribute_probe_reads_looks_not_people():
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(40), 6)
    colour = rng.integers(0, 2, 40)[pids]
    looks = np.eye(2)[colour] + 0.01 * rng.standard_normal((len(pids), 2))
    assert attribute_probe_accuracy(looks, colour, pids)["accuracy"] == 1.0
    # features that only tell people apart: a probe that never sees a test person cannot name their colour
    people = np.eye(40)[pids] + 0.01 * rng.standard_normal((len(pids), 40))
    probe = attribute_probe_accuracy(people, colour, pids)
    assert probe["accuracy"] <= probe["chance"] + 0.1


def test_record_attributes_follow_the_worlds_plan(tiny_data_root):
    world = load_dataset("synthetic:tiny_target", tiny_data_root)
    plan = dataset_plan(world)
    colours = record_attribute(world, world.train, "upper colour")
    pids, _ = ids_and_cameras(world.train)
    assert len(colours) == len(world.train)
    # one colour per person, and two people share a code exactly when they share the plan's colour
    per_person = pd.Series(colours).groupby(pids).nunique()
    assert set(per_person) == {1}
    first = {pid: code for pid, code in zip(pids, colours)}
    by_plan = {pid: plan.identities[pid - 1].upper for pid in first}
    assert all((first[a] == first[b]) == (by_plan[a] == by_plan[b]) for a in first for b in first)
    with pytest.raises(ValueError, match="unknown attribute 'shoes'"):
        record_attribute(world, world.train, "shoes")
    assert "upper colour" in READOUT_ATTRIBUTES
