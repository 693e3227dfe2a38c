"""Study figures on hand-made sweeps: every plotted mean, std band, error bar and baseline is checked against
values computed by hand (std: pandas' ddof=1 over seeds, 0 for a single seed)."""

import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from canu_core.viz.study import plot_lost_ids_per_epoch, plot_metric_against, plot_mi_per_epoch

METHODS = ["mmt", "ssg"]  # mmt first on purpose: the panels still come out ssg, mmt
ADVERSARIES = ["none", "adv", "canu"]


def assert_saved(fig, path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 2  # one panel per method


def histories_frame():
    """2 methods x 3 adversaries x 2 seeds x 3 epochs; values in quarters so the means are exact.
    mi_pseudo = 2 m + a + e / 4 + s / 2, mi_true = (1 + m) / 4 + e / 8 + s / 4, lost = 10 m + 3 a + e + 2 s,
    with m the method's index in ssg, mmt and a the adversary's in ADVERSARIES."""
    rows = []
    for method in METHODS:
        m = ["ssg", "mmt"].index(method)
        for a, adversary in enumerate(ADVERSARIES):
            for seed in (0, 1):
                for epoch in range(3):
                    rows.append(
                        {
                            "run_name": f"{method}_{adversary}_s{seed}",
                            "method": method,
                            "adversary": adversary,
                            "mu": 0.1,
                            "seed": seed,
                            "target_coverage": 1.0,
                            "epoch": epoch,
                            "status": "skipped" if epoch == 0 else "trained",
                            "mi_pseudo_camera": 2 * m + a + epoch / 4 + seed / 2,
                            "mi_true_camera": (1 + m) / 4 + epoch / 8 + seed / 4,
                            "lost_ids": 10 * m + 3 * a + epoch + 2 * seed,
                            "target_mAP": math.nan if epoch == 0 else 30.0 + epoch,
                            "target_R1": math.nan if epoch == 0 else 50.0 + epoch,
                        }
                    )
    return pd.DataFrame(rows)


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_mi_per_epoch_means_bands_and_true_ids(tmp_path):
    fig = plot_mi_per_epoch(histories_frame(), path=tmp_path / "mi.png", title="Fig. 3")
    assert_saved(fig, tmp_path / "mi.png")
    ssg, mmt = fig.axes
    assert [ssg.get_title(), mmt.get_title()] == ["SSG", "MMT"]
    assert ssg.get_ylabel() == "MI(pseudo-labels; camera) (nats)" and ssg.get_xlabel() == "epoch"
    assert [t.get_text() for t in ssg.get_legend().get_texts()] == ["baseline", "+Adv.", "CANU", "true ids"]
    lines = lines_by_label(ssg)
    assert_array_equal(lines["CANU"].get_xdata(), [1, 2, 3])
    assert_array_equal(lines["CANU"].get_ydata(), [2.25, 2.5, 2.75])  # seeds (2, 2.5), (2.25, 2.75), ...
    assert_array_equal(lines["baseline"].get_ydata(), [0.25, 0.5, 0.75])
    assert_array_equal(lines_by_label(mmt)["+Adv."].get_ydata(), [3.25, 3.5, 3.75])
    true = lines["true ids"]
    assert true.get_linestyle() == "--" and true.get_color() == "black"
    assert_array_equal(true.get_ydata(), [0.375, 0.5, 0.625])  # seeds (0.25, 0.5), (0.375, 0.625), ...
    assert_array_equal(lines_by_label(mmt)["true ids"].get_ydata(), [0.625, 0.75, 0.875])
    # One band per adversary: mean +- std of two values 0.5 apart (ddof=1: 0.5 / sqrt(2)).
    assert len(ssg.collections) == 3
    band = ssg.collections[2].get_paths()[0].vertices[:, 1]  # CANU's
    assert_allclose([band.min(), band.max()], [2.25 - 0.5 / math.sqrt(2), 2.75 + 0.5 / math.sqrt(2)])
    assert fig.get_suptitle() == "Fig. 3"


def test_adjusted_mi_per_epoch_reads_the_adjusted_columns():
    histories = histories_frame()
    histories = histories.assign(
        ami_pseudo_camera=histories["mi_pseudo_camera"] - 1, ami_true_camera=histories["mi_true_camera"] - 0.25
    )
    fig = plot_mi_per_epoch(histories, adjusted=True)
    ssg = fig.axes[0]
    assert ssg.get_ylabel() == "adjusted MI(pseudo-labels; camera) (nats)"
    assert_array_equal(lines_by_label(ssg)["CANU"].get_ydata(), [1.25, 1.5, 1.75])
    assert_array_equal(lines_by_label(ssg)["true ids"].get_ydata(), [0.125, 0.25, 0.375])


def test_single_seed_has_no_band():
    histories = histories_frame()
    fig = plot_mi_per_epoch(histories[histories["seed"] == 1])
    ssg = fig.axes[0]
    assert len(ssg.collections) == 0
    assert_array_equal(lines_by_label(ssg)["CANU"].get_ydata(), [2.5, 2.75, 3.0])


def test_lost_ids_per_epoch_without_true_ids(tmp_path):
    histories = histories_frame()
    histories = histories[(histories["adversary"] != "adv") & (histories["method"] == "mmt")]
    fig = plot_lost_ids_per_epoch(histories, path=tmp_path / "lost.png")
    assert tmp_path.joinpath("lost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (ax,) = fig.axes
    assert ax.get_title() == "MMT"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["baseline", "CANU"]
    assert all(line.get_linestyle() == "-" for line in ax.get_lines())
    lines = lines_by_label(ax)
    assert_array_equal(lines["baseline"].get_ydata(), [11, 12, 13])  # seeds (10, 12), (11, 13), (12, 14)
    assert_array_equal(lines["CANU"].get_ydata(), [17, 18, 19])


def results_frame():
    """Final results by hand: CANU at mu 0.1 and 1.0 and baselines, two seeds except where noted."""
    rows = [
        ("ssg", "canu", 0.1, 0, 40.0),
        ("ssg", "canu", 0.1, 1, 42.0),
        ("ssg", "canu", 1.0, 0, 44.0),
        ("ssg", "canu", 1.0, 1, 47.0),
        ("mmt", "canu", 0.1, 0, 50.0),
        ("mmt", "canu", 0.1, 1, 51.0),
        ("mmt", "canu", 1.0, 0, 55.0),  # a single seed: std 0, not NaN
        ("ssg", "none", 0.0, 0, 38.0),
        ("ssg", "none", 0.0, 1, 40.0),
        ("mmt", "none", 0.0, 0, 48.0),
    ]
    return pd.DataFrame(
        [
            {
                "run_name": f"{m}_{a}_mu{mu}_s{s}",
                "method": m,
                "adversary": a,
                "mu": mu,
                "seed": s,
                "target_coverage": 1.0,
                "target_mAP": mAP,
                "target_R1": mAP + 20,
                "mi_pseudo_camera": 0.5,
                "mi_true_camera": 0.25,
                "lost_ids": 3,
            }
            for m, a, mu, s, mAP in rows
        ]
    )


def errorbars(ax):
    """(label, x, y, half length of each error bar) of every errorbar line in `ax`."""
    out = []
    for container in ax.containers:
        line, _, (bars,) = container.lines
        half = [(segment[1, 1] - segment[0, 1]) / 2 for segment in bars.get_segments()]
        out.append((container.get_label(), line.get_xdata(), line.get_ydata(), half))
    return out


def test_metric_against_mu_with_baselines(tmp_path):
    results = results_frame()
    fig = plot_metric_against(
        results[results["adversary"] == "canu"],
        x="mu",
        path=tmp_path / "mu.png",
        log_x=True,
        baselines=results[results["adversary"] == "none"],
    )
    assert_saved(fig, tmp_path / "mu.png")
    ssg, mmt = fig.axes
    assert ssg.get_xscale() == "log" and mmt.get_xscale() == "log"
    assert (ssg.get_xlabel(), ssg.get_ylabel()) == ("mu", "target mAP (%)")
    assert [t.get_text() for t in ssg.get_legend().get_texts()] == ["baseline (no adversary)", "CANU"]

    ((label, x, y, half),) = errorbars(ssg)
    assert label == "CANU"
    assert_array_equal(x, [0.1, 1.0])
    assert_array_equal(y, [41.0, 45.5])
    assert_allclose(half, [math.sqrt(2), math.sqrt(4.5)])  # ddof=1: (40, 42) and (44, 47)
    ((_, _, y, half),) = errorbars(mmt)
    assert_array_equal(y, [50.5, 55.0])
    assert_allclose(half, [math.sqrt(0.5), 0.0])

    baseline = lines_by_label(ssg)["baseline (no adversary)"]
    assert baseline.get_linestyle() == "--"
    assert_array_equal(baseline.get_ydata(), [39.0, 39.0])
    (span,) = ssg.patches  # axhspan: a rectangle whose y and height are in data units
    assert_allclose([span.get_y(), span.get_height()], [39.0 - math.sqrt(2), 2 * math.sqrt(2)])  # (38, 40)
    assert_array_equal(lines_by_label(mmt)["baseline (no adversary)"].get_ydata(), [48.0, 48.0])
    assert len(mmt.patches) == 0  # one baseline seed: no band


def test_metric_against_coverage_by_adversary():
    results = results_frame().assign(target_coverage=lambda f: np.where(f["mu"] == 1.0, 0.5, 1.0))
    results = results[results["adversary"] == "canu"]
    results = pd.concat([results, results.assign(adversary="adv", target_mAP=results["target_mAP"] - 10)])
    fig = plot_metric_against(results, x="target_coverage", metric="target_R1")
    ssg, _ = fig.axes
    assert ssg.get_xscale() == "linear"
    assert (ssg.get_xlabel(), ssg.get_ylabel()) == ("target camera coverage", "target R1 (%)")
    assert [t.get_text() for t in ssg.get_legend().get_texts()] == ["+Adv.", "CANU"]
    (adv_label, x, y, _), (canu_label, _, _, _) = errorbars(ssg)
    assert (adv_label, canu_label) == ("+Adv.", "CANU")
    assert_array_equal(x, [0.5, 1.0])
    assert_array_equal(y, [65.5, 61.0])  # R1 = mAP + 20, unaffected by the mAP shift


def test_metric_against_raw_names_and_other_hue():
    results = results_frame()
    fig = plot_metric_against(results[results["adversary"] == "canu"], x="seed", metric="lost_ids", hue="mu")
    ssg = fig.axes[0]
    assert (ssg.get_xlabel(), ssg.get_ylabel()) == ("seed", "lost_ids")
    assert [t.get_text() for t in ssg.get_legend().get_texts()] == ["0.1", "1.0"]


@pytest.mark.parametrize("plot", [plot_mi_per_epoch, plot_lost_ids_per_epoch])
def test_per_epoch_missing_column_or_empty(plot):
    histories = histories_frame()
    column = "mi_pseudo_camera" if plot is plot_mi_per_epoch else "lost_ids"
    with pytest.raises(ValueError, match=f"histories needs columns \\['{column}'\\]"):
        plot(histories.drop(columns=column))
    with pytest.raises(ValueError, match="histories is empty"):
        plot(histories.iloc[:0])


def test_mi_needs_the_true_id_column():
    with pytest.raises(ValueError, match="mi_true_camera"):
        plot_mi_per_epoch(histories_frame().drop(columns="mi_true_camera"))


def test_per_epoch_refuses_to_pool_configurations():
    histories = histories_frame()
    with pytest.raises(ValueError, match="expected one per seed"):
        plot_mi_per_epoch(pd.concat([histories, histories.assign(mu=1.0)]))


def test_metric_against_errors():
    results = results_frame()
    with pytest.raises(ValueError, match=r"results needs columns \['target_coverage'\]"):
        plot_metric_against(results.drop(columns="target_coverage"), x="target_coverage")
    with pytest.raises(ValueError, match="results is empty"):
        plot_metric_against(results.iloc[:0], x="mu")
    with pytest.raises(ValueError, match=r"baselines needs columns \['target_R1'\]"):
        plot_metric_against(results, x="mu", metric="target_R1", baselines=results.drop(columns="target_R1"))
    with pytest.raises(ValueError, match="expected one per seed"):
        plot_metric_against(results.assign(mu=0.1), x="mu")  # two mu values pooled into one point
    with pytest.raises(ValueError, match=r"log_x needs positive mu values; found \[0.0, 0.0, 0.0\]"):
        plot_metric_against(results, x="mu", log_x=True)


def test_plot_claims_one_panel_per_unit(tmp_path):
    from canu_core.viz.study import plot_claims

    claims = pd.DataFrame(
        {
            "comparison": ["A - B", "C - D", "E - F"],
            "metric": ["mAP", "mAP", "adj. MI (nats)"],
            "direction": [1, 1, -1],
            "mean": [2.0, -1.0, -0.1],
            "ci_low": [1.0, -3.0, -0.2],
            "ci_high": [3.0, 0.5, 0.0],
            "verdict": ["supported", "inconclusive", "inconclusive"],
        }
    )
    fig = plot_claims(claims, path=tmp_path / "claims.png")
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["A - B (> 0)", "C - D (> 0)"]
    assert list(fig.axes[0].get_yticks()) == [1, 0]  # the table's first claim on top
    assert fig.axes[1].get_yticklabels()[0].get_text() == "E - F (< 0)"
    assert (tmp_path / "claims.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_metric_per_epoch_skips_epochs_without_a_value(tmp_path):
    from canu_core.viz.study import plot_metric_per_epoch

    histories = pd.DataFrame(
        {
            "method": "mmt",
            "adversary": ["none", "none", "canu", "canu"],
            "seed": 0,
            "epoch": [0, 1, 0, 1],
            "target_mAP": [float("nan"), 30.0, float("nan"), 32.0],
        }
    )
    fig = plot_metric_per_epoch(histories, "target_mAP", path=tmp_path / "map.png")
    lines = [line for line in fig.axes[0].get_lines() if line.get_label() in ("baseline", "CANU")]
    assert [list(line.get_xdata()) for line in lines] == [[2], [2]]
    assert [list(line.get_ydata()) for line in lines] == [[30.0], [32.0]]
    assert fig.axes[0].get_ylabel() == "target mAP (%)"


def test_the_camera_probe_is_drawn_beside_what_the_identity_alone_allows(tmp_path):
    from canu_core.viz.study import plot_metric_per_epoch

    histories = pd.DataFrame(
        {
            "method": "mmt",
            "adversary": ["none", "none", "adv", "adv"],
            "seed": 0,
            "epoch": [0, 1, 0, 1],
            "camera_probe_accuracy": [0.95, 0.96, 0.92, 0.91],
            "camera_identity_alone": 0.35,
        }
    )
    fig = plot_metric_per_epoch(histories, "camera_probe_accuracy", path=tmp_path / "probe.png")
    (level,) = [line for line in fig.axes[0].get_lines() if line.get_label() == "from the true identity alone"]
    assert list(level.get_ydata()) == [0.35, 0.35] and level.get_linestyle() == "--"
    older = plot_metric_per_epoch(histories.drop(columns="camera_identity_alone"), "camera_probe_accuracy")
    assert "from the true identity alone" not in [line.get_label() for line in older.axes[0].get_lines()]


def test_a_runs_curves_judge_the_adversary_by_a_probe_beside_its_discriminator():
    from canu_core.viz.adaptation import plot_adaptation

    history = pd.DataFrame(
        {
            "method": "mmt",
            "epoch": [0, 1],
            "status": "trained",
            "disc_acc_1": [0.55, 0.41],
            "camera_probe_accuracy": [0.92, 0.91],
            "camera_identity_alone": [0.35, 0.35],
        }
    )
    panel = plot_adaptation(history, num_cameras=8).axes[1]
    labels = [line.get_label() for line in panel.get_lines()]
    assert labels == ["disc_acc_1", "fresh linear probe", "true identity alone", "chance (1/8)"]
    assert panel.get_title() == "camera accuracy: discriminators and a probe"
