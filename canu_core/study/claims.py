"""The paper's claims, tested on a study's results: paired differences per unit (a pair of source models, or a seed
of one), their intervals and verdicts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from scipy.stats import t as student_t

from ..config import ADVERSARIES, METHOD_NAMES, METHODS, Params
from .plan import PAPER_MU, WITH_ADVERSARY
from .tables import UNIT, _at_paper_mu, _plain, coverage_rows, method_name, mu_sweep_rows

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
