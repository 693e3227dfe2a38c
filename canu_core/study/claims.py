"""The paper's claims, tested on a study's results: paired differences per unit (a pair of source models, or a seed
of one), their intervals and verdicts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from scipy.stats import t as student_t

from ..config import ADVERSARIES, METHOD_NAMES, METHODS, Params
from .plan import PAPER_MU, WITH_ADVERSARY
from .tables import UNIT, _plain, arms_with_several_mu, coverage_rows, method_name, mu_sweep_rows

# The calibration's bar for a regime where adaptation works: the baseline beats direct transfer by this many mAP.
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
    difference: Term | None = None  # what is compared: a difference of arms, evaluated per unit by `unit_values`


PAPER = "paper"  # an Arm's mu: the method's paper mu (PAPER_MU)


class Subtractable:
    """A term of a claim's comparison: `a - b` builds their Difference, evaluated later by `unit_values`."""

    def __sub__(self, other: Term) -> Difference:
        return Difference(self, other)


@dataclass(frozen=True)
class Arm(Subtractable):
    """One arm of a comparison, one value per unit: the runs of `method` with `adversary` (and `variant`) at `mu`
    (PAPER: the method's paper mu; None: any; ignored without adversary) among the row set `rows` (a name of the
    row sets the claims are evaluated on), restricted to the columns' values in `where`, their `metric` averaged."""

    method: str
    adversary: str
    metric: str = "target_mAP"
    variant: str = ""
    mu: float | str | None = PAPER
    rows: str = "table"
    where: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Spread(Subtractable):
    """Per unit, the largest less the smallest of `arm`'s metric over its mu values up to `mu_at_most` (none
    where fewer than two mu values ran)."""

    arm: Arm
    mu_at_most: float


@dataclass(frozen=True)
class Difference(Subtractable):
    left: Term
    right: Term


Term = Arm | Spread | Difference | float


def unit_values(term: Term, rows: Mapping[str, pd.DataFrame]) -> pd.Series | float:
    """The evaluator: `term`'s value per unit on the row sets `rows` (a number stays a number)."""
    if isinstance(term, Difference):
        return unit_values(term.left, rows) - unit_values(term.right, rows)
    if isinstance(term, Spread):
        arm = term.arm
        runs = _arm_rows(dataclasses.replace(arm, mu=None), rows)
        runs = runs[runs["mu"].le(term.mu_at_most)]
        if runs["mu"].nunique() < 2:
            return pd.Series(dtype=float)
        return runs.groupby(UNIT)[arm.metric].agg(lambda v: v.max() - v.min())
    if isinstance(term, Arm):
        return _arm_rows(term, rows).groupby(UNIT)[term.metric].mean()
    return term


def _arm_rows(arm: Arm, rows: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    frame = rows[arm.rows]
    for column, value in arm.where:
        frame = frame[frame[column].eq(value)]
    frame = frame[
        frame["method"].eq(arm.method)
        & frame["adversary"].eq(arm.adversary)
        & frame["variant"].fillna("").eq(arm.variant)
    ]
    mu = PAPER_MU[arm.method] if arm.mu == PAPER else arm.mu
    if mu is not None and arm.adversary != "none":
        frame = frame[frame["mu"].eq(mu)]
    return frame


def measured(claims: Iterable[Claim], rows: Mapping[str, pd.DataFrame]) -> list[tuple[Claim, pd.Series]]:
    """Each claim with its per-unit differences on `rows`; the claims with none left out, and missing units
    dropped."""
    pairs = [(claim, unit_values(claim.difference, rows)) for claim in claims]
    return [(claim, values.dropna()) for claim, values in pairs if len(values.dropna())]


def study_rows(results: pd.DataFrame, histories: pd.DataFrame, params: Params) -> dict[str, pd.DataFrame]:
    """The row sets the paper's claims compare, each defined once: Table IV's runs ("table": default world, paper
    settings, `seeds`), their first clusterings ("first"), every default-world run on `seeds` ("default": with the
    oracle condition), on `sweep_seeds` ("ablated": with the ablations; "swept": paper settings, every mu), and the
    coverage sweep's ("coverage": paper settings; "coverage_oracle": the oracle condition)."""
    plain = results[_plain(results)]
    default_world = results[results["default_world"]]
    return {
        "table": plain[plain["seed"].isin(params.seeds)],
        "first": histories[_plain(histories) & histories["epoch"].eq(0) & histories["seed"].isin(params.seeds)],
        "default": default_world[default_world["seed"].isin(params.seeds)],
        "ablated": default_world[default_world["seed"].isin(params.sweep_seeds)],
        "swept": plain[plain["seed"].isin(params.sweep_seeds)],
        "coverage": coverage_rows(results, params),
        "coverage_oracle": coverage_rows(results, params, ["oracle"]),
    }


def method_claims(method: str, direct_mAP: Mapping[str, float] | None) -> list[Claim]:
    """The paper's claims on one method, in the claims table's order (one row each: what is claimed, the
    comparison, its difference of arms, the metric, the direction, the margin, the kind)."""
    mu, name, canu = PAPER_MU[method], METHOD_NAMES[(method, "none")], METHOD_NAMES[(method, "canu")]
    adv = METHOD_NAMES[(method, "adv")]

    def arm(adversary: str, metric: str = "target_mAP", **selection) -> Arm:
        return Arm(method, adversary, metric, **selection)

    ami, first = "ami_pseudo_camera", {"rows": "first"}
    claims = []
    if direct_mAP is not None and method in direct_mAP:
        bar = WORKING_REGIME_GAIN[method]
        claims.append(
            Claim(
                f"the regime works: {name} beats direct transfer by more than {bar:g} mAP",
                f"{name} - direct transfer - {bar:g}",
                "mAP",
                +1,
                0.0,
                difference=arm("none") - direct_mAP[method] - bar,
            )
        )
    claims += [
        Claim(
            "the first pseudo-labels carry more camera information than the true identities (Sec. III)",
            f"{name}, first clustering: pseudo-labels - true ids",
            "adj. MI (nats)",
            +1,
            0.02,
            per_pair=True,
            difference=arm("none", ami, **first) - arm("none", "ami_true_camera", **first),
        ),
        Claim(
            "a camera adversary improves the baseline (Table IV)",
            f"{adv} - {name}",
            "mAP",
            +1,
            1.0,
            difference=arm("adv") - arm("none"),
        ),
        Claim(
            "CANU improves the baseline (Table IV)",
            f"{canu} - {name}",
            "mAP",
            +1,
            1.0,
            difference=arm("canu") - arm("none"),
        ),
        Claim(
            "CANU is at least as good as the plain adversary (Table IV)",
            f"{canu} - {adv}",
            "mAP",
            +1,
            1.0,
            "non-inferiority",
            difference=arm("canu") - arm("adv"),
        ),
        *(
            Claim(
                "adversarial training lowers the pseudo-labels' camera information (Fig. 3)",
                f"{METHOD_NAMES[(method, adversary)]} - {name}, last clustering",
                "adj. MI (nats)",
                -1,
                0.02,
                difference=arm(adversary, ami) - arm("none", ami),
            )
            for adversary in WITH_ADVERSARY
        ),
        Claim(
            "the pseudo-labels' camera information falls during training (Fig. 3)",
            f"{canu}: last - first clustering",
            "adj. MI (nats)",
            -1,
            0.02,
            difference=arm("canu", ami) - arm("canu", ami, **first),
        ),
    ]
    oracle = arm("canu", variant="oracle", rows="default")
    claims += [
        Claim(
            "diagnostic: CANU conditioned on the true identities improves the baseline",
            f"{canu} [oracle condition] - {name}",
            "mAP",
            +1,
            1.0,
            difference=oracle - arm("none"),
        ),
        Claim(
            "diagnostic: the right condition does better than the pseudo-labels' one",
            f"{canu} [oracle condition] - {canu}",
            "mAP",
            +1,
            1.0,
            difference=oracle - arm("canu"),
        ),
        Claim(
            "diagnostic: with the right condition CANU is at least as good as the plain adversary",
            f"{canu} [oracle condition] - {adv}",
            "mAP",
            +1,
            1.0,
            "non-inferiority",
            difference=oracle - arm("adv"),
        ),
        *(
            Claim(
                claim,
                f"{method_name(method, 'canu', variant)} - {canu}",
                "mAP",
                +1,
                1.0,
                difference=arm("canu", variant=variant, rows="ablated") - arm("canu", rows="ablated"),
            )
            for variant, claim in (
                ("embedding", "diagnostic (ablation): the discriminators do better reading the embedding"),
                ("uniform", "diagnostic (ablation): the bounded uniform-CE objective does better than Eq. 4's"),
            )
        ),
    ]
    large, swept = arm("canu", mu=LARGE_MU, rows="swept"), {"rows": "swept"}
    comparison = f"{canu} at mu {LARGE_MU:g} - at mu {mu:g}"
    if method in PAPER_COLLAPSES_AT_LARGE_MU:
        claims += [
            Claim(
                f"{canu} collapses at mu {LARGE_MU:g} (Table III)",
                comparison,
                "mAP",
                -1,
                1.0,
                difference=large - arm("canu", **swept),
            ),
            Claim(
                f"diagnostic: the collapse at mu {LARGE_MU:g} is the conditioning's, not any adversary's (Table III)",
                f"{adv} - {canu} at mu {LARGE_MU:g}",
                "mAP",
                +1,
                1.0,
                difference=arm("adv", mu=LARGE_MU, rows="swept") - large,
            ),
        ]
    else:
        claims.append(
            Claim(
                f"{canu} holds at mu {LARGE_MU:g}: at least as good as at mu {mu:g} (Table III)",
                comparison,
                "mAP",
                +1,
                1.0,
                "non-inferiority",
                difference=large - arm("canu", **swept),
            )
        )
    claims.append(
        Claim(
            "CANU's mAP is flat in mu over [0.01, 0.4] (Table III): spread below 2 mAP",
            f"{canu}: max - min over mu <= 0.4, less 2",
            "mAP",
            -1,
            0.0,
            difference=Spread(arm("canu", **swept), 0.4) - 2.0,
        )
    )
    return claims


def coverage_claims(method: str, low: float, high: float) -> list[Claim]:
    """The coverage sweep's claims: negative transfer of the plain adversary where ids are tied to few cameras
    (coverage `low`), and CANU's standing against it there and against `high`."""
    adv, canu, name = (METHOD_NAMES[(method, a)] for a in ("adv", "canu", "none"))

    def at(adversary: str, coverage: float, variant: str = "") -> Arm:
        rows = "coverage_oracle" if variant else "coverage"
        return Arm(method, adversary, variant=variant, rows=rows, where=(("target_coverage", coverage),))

    return [
        Claim(
            f"a plain adversary transfers negatively where ids are tied to few cameras (coverage {low:g})",
            f"{adv} - {name} at coverage {low:g}",
            "mAP",
            -1,
            1.0,
            difference=at("adv", low) - at("none", low),
        ),
        Claim(
            f"CANU avoids that negative transfer: it beats the plain adversary there (coverage {low:g})",
            f"{canu} - {adv} at coverage {low:g}",
            "mAP",
            +1,
            1.0,
            difference=at("canu", low) - at("adv", low),
        ),
        Claim(
            f"diagnostic: with the right condition CANU beats the plain adversary where ids are tied to few "
            f"cameras (coverage {low:g})",
            f"{canu} [oracle condition] - {adv} at coverage {low:g}",
            "mAP",
            +1,
            1.0,
            difference=at("canu", low, "oracle") - at("adv", low),
        ),
        Claim(
            "CANU's standing against the plain adversary improves where ids are tied to few cameras "
            "(the reason for conditioning, Sec. III)",
            f"({canu} - {adv}) at coverage {low:g} - at coverage {high:g}",
            "mAP",
            +1,
            1.0,
            difference=(at("canu", low) - at("adv", low)) - (at("canu", high) - at("adv", high)),
        ),
    ]


def claim_differences(
    results: pd.DataFrame, histories: pd.DataFrame, params: Params, direct_mAP: Mapping[str, float] | None = None
) -> list[tuple[Claim, pd.Series]]:
    """Every claim the finished runs can test, with its differences per unit (`study_rows` says which runs each
    compares: Table IV and the oracle on `seeds`, the sweeps on `sweep_seeds`). With `direct_mAP` (per method,
    direct_transfer's mAP), first whether the regime works: each baseline's gain over direct transfer beyond
    WORKING_REGIME_GAIN."""
    rows = study_rows(results, histories, params)
    claims = [claim for method in METHODS if method in params.methods for claim in method_claims(method, direct_mAP)]
    coverages = rows["coverage"]["target_coverage"]
    if len(coverages) and coverages.nunique() > 1:
        claims += coverage_claims(params.coverage_method, coverages.min(), coverages.max())
    return measured(claims, rows)


def mu_sweep_differences(results: pd.DataFrame, params: Params) -> list[tuple[Claim, pd.Series]]:
    """Table III's question at every mu of the grid, for each method: is CANU at least as good as the plain
    adversary at the same weight? Per-unit CANU - +Adv. on `sweep_seeds`, a non-inferiority claim (margin 1 mAP)."""
    adversarial, _ = mu_sweep_rows(results, params)
    claims = [
        Claim(
            f"CANU is at least as good as the plain adversary at mu {mu:g} (Table III)",
            f"{METHOD_NAMES[(method, 'canu')]} - {METHOD_NAMES[(method, 'adv')]} at mu {mu:g}",
            "mAP",
            +1,
            1.0,
            "non-inferiority",
            difference=Arm(method, "canu", mu=mu, rows="swept") - Arm(method, "adv", mu=mu, rows="swept"),
        )
        for method in METHODS
        if method in params.methods
        for mu in params.mu_grid
    ]
    return measured(claims, {"swept": adversarial})


def fashion_claims(method: str, worlds: Sequence[float]) -> list[Claim]:
    """The fashion study's claims (docs/study/fashion/README.md, stated before its runs), per (pretrain_seed, seed)
    unit: at every world, +Adv. - baseline, CANU - +Adv. and the oracle condition - +Adv.; then (a) +Adv.'s gain over
    the baseline shrinks as fashion grows; (b) CANU - +Adv. rises with fashion and exceeds 1 mAP at the largest;
    (c) the oracle condition does at least as well as CANU; (d) the upper-colour probe drops on +Adv.'s features
    and less on CANU's. The falsifier reads the largest world's oracle - +Adv. (while (d) says whether +Adv.
    erased the attribute)."""
    names = {a: METHOD_NAMES[(method, a)] for a in ADVERSARIES}
    oracle_name = method_name(method, "canu", "oracle")

    def at(fashion: float, adversary: str, metric: str = "target_mAP", variant: str = "") -> Arm:
        return Arm(method, adversary, metric, variant, None, "fashion", (("target_area_fashion", fashion),))

    def gain(fashion, better, worse, metric="target_mAP", variant=""):
        return at(fashion, better, metric, variant) - at(fashion, worse, metric)

    claims = []
    for fashion in worlds:
        where = f"at fashion {fashion:g}"
        claims += [
            Claim(
                f"+Adv. improves the baseline {where}",
                f"{names['adv']} - {names['none']} {where}",
                "mAP",
                +1,
                1.0,
                difference=gain(fashion, "adv", "none"),
            ),
            Claim(
                f"CANU is at least as good as +Adv. {where}",
                f"{names['canu']} - {names['adv']} {where}",
                "mAP",
                +1,
                1.0,
                "non-inferiority",
                difference=gain(fashion, "canu", "adv"),
            ),
            Claim(
                f"diagnostic: the right condition beats +Adv. {where}",
                f"{oracle_name} - {names['adv']} {where}",
                "mAP",
                +1,
                1.0,
                difference=gain(fashion, "canu", "adv", variant="oracle"),
            ),
        ]
    if len(worlds) < 2:
        return claims
    low, high = worlds[0], worlds[-1]
    span, where, probe = f"fashion {high:g} - {low:g}", f"at fashion {high:g}", "attribute_probe_accuracy"
    return claims + [
        Claim(
            "(a) +Adv.'s gain over the baseline shrinks as looks depend on cameras (negative transfer)",
            f"({names['adv']} - {names['none']}): {span}",
            "mAP",
            -1,
            1.0,
            difference=gain(high, "adv", "none") - gain(low, "adv", "none"),
        ),
        Claim(
            "(b) CANU - +Adv. rises as looks depend on cameras",
            f"({names['canu']} - {names['adv']}): {span}",
            "mAP",
            +1,
            1.0,
            difference=gain(high, "canu", "adv") - gain(low, "canu", "adv"),
        ),
        Claim(
            f"(b) CANU beats +Adv. by more than 1 mAP {where}",
            f"{names['canu']} - {names['adv']} - 1 {where}",
            "mAP",
            +1,
            0.0,
            difference=gain(high, "canu", "adv") - 1.0,
        ),
        Claim(
            f"(c) the oracle condition does at least as well as CANU {where}",
            f"{oracle_name} - {names['canu']} {where}",
            "mAP",
            +1,
            1.0,
            "non-inferiority",
            difference=gain(high, "canu", "canu", variant="oracle"),
        ),
        Claim(
            f"(d) +Adv. erases clothing colour from the features {where}",
            f"{names['adv']} - {names['none']}, upper-colour probe {where}",
            "probe accuracy",
            -1,
            0.02,
            difference=gain(high, "adv", "none", probe),
        ),
        Claim(
            f"(d) CANU keeps more clothing colour than +Adv. {where}",
            f"{names['canu']} - {names['adv']}, upper-colour probe {where}",
            "probe accuracy",
            +1,
            0.02,
            difference=gain(high, "canu", "adv", probe),
        ),
    ]


def fashion_differences(rows: pd.DataFrame, params: Params) -> list[tuple[Claim, pd.Series]]:
    """`fashion_claims` on the fashion study's rows (fashion_rows), with their differences per unit: one mu per arm
    (a validation sweep's several are compared in a table, not by these claims)."""
    several = arms_with_several_mu(rows)
    if several:
        raise ValueError(
            f"the fashion claims compare one mu per arm; found {several}: give one value in fashion_adv_mu / "
            f"fashion_canu_mu"
        )
    worlds = sorted(set(rows["target_area_fashion"]))
    return measured(fashion_claims(params.coverage_method, worlds), {"fashion": rows}) if worlds else []


def fashion_gaps(rows: pd.DataFrame, params: Params) -> pd.DataFrame:
    """CANU - +Adv. and CANU [oracle condition] - +Adv. in mAP at every target_area_fashion: per comparison and
    world, the mean over units with its t interval (evaluate_claims' columns), for plot_differences_against."""
    method = params.coverage_method
    frames = []
    for fashion in sorted(set(rows["target_area_fashion"])):
        at = {"rows": "fashion", "mu": None, "where": (("target_area_fashion", fashion),)}
        adv = Arm(method, "adv", **at)
        claims = [
            Claim(
                "",
                f"{method_name(method, 'canu', variant)} - {METHOD_NAMES[(method, 'adv')]}",
                "mAP",
                +1,
                1.0,
                difference=Arm(method, "canu", variant=variant, **at) - adv,
            )
            for variant in ("", "oracle")
        ]
        frames.append(evaluate_claims(measured(claims, {"fashion": rows})).assign(target_area_fashion=fashion))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


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
