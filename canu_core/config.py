"""One typed definition of every parameter the lab accepts, and its validation.

Parameters arrive from YAML files in `params/`, from papermill (`-p name value`) or from the command line. All go
through `make_params`, which rejects unknown names (with a suggestion) and wrong types instead of warning: a
misspelled `-p muu 0.1` must not silently run the default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional, Union

import yaml

# The adaptation methods and the adversaries they run with, in the paper's table order (SSG before MMT; none, +Adv.,
# CANU): one definition for the parameter types, the engine's checks and the study's tables and figures.
Method = Literal["ssg", "mmt"]
Adversary = Literal["none", "adv", "canu"]
METHODS: tuple[str, ...] = typing.get_args(Method)
ADVERSARIES: tuple[str, ...] = typing.get_args(Adversary)
# What tables and figures call each adversary, and each (method, adversary) arm (the paper's names).
ADVERSARY_NAMES = {"none": "baseline", "adv": "+Adv.", "canu": "CANU"}
METHOD_NAMES = {
    ("ssg", "none"): "SSG",
    ("ssg", "adv"): "SSG+Adv.",
    ("ssg", "canu"): "CANU-SSG",
    ("mmt", "none"): "MMT (DBSCAN)",
    ("mmt", "adv"): "MMT+Adv.",
    ("mmt", "canu"): "CANU-MMT",
}

# Every parameter's group, in the order a reader meets them: the names stay flat (`-p mu 0.1`, `mu: 0.1` in a file,
# params.yaml), and a file may also write a group as a mapping (`adversary: {mu: 0.1, disc_lr: 0.0035}`).
GROUPS: dict[str, tuple[str, ...]] = {
    "run": ("run_name", "seed", "device", "threads", "amend", "loss_limit", "interactive", "nproc", "num_workers"),
    "compute": ("amp", "amp_dtype", "channels_last", "sync_bn", "bn_group_size"),
    "data": (
        "source",
        "target",
        "data_root",
        "world_seed",
        "target_coverage",
        "target_area_fashion",
        "target_visit_skew",
        "height",
        "width",
    ),
    "evaluation": ("eval_batch_size", "flip_eval", "ssg_flip_eval", "rerank", "eval_every_epoch", "umap_figures"),
    "training": ("batch_ids", "instances", "weight_decay", "label_smoothing", "triplet_margin"),
    "pretraining": (
        "arch",
        "pretrained_weights",
        "last_stride",
        "n_models",
        "epochs",
        "iters_per_epoch",
        "lr",
        "warmup_epochs",
        "milestones",
        "pretrain_triplet",
        "pretrain_target_forward",
    ),
    "adaptation": (
        "method",
        "pretrain_run",
        "accept_unfinished_pretraining",
        "compare_pretrain_run",
        "model_index",
        "source_checkpoint",
        "adapt_epochs",
        "adapt_iters_per_epoch",
    ),
    "clustering": (
        "clustering",
        "jaccard",
        "neighbour_search",
        "ivf_lists",
        "ivf_probes",
        "k1",
        "k2",
        "rho",
        "eps",
        "min_samples",
        "n_clusters",
        "ckrnns",
        "clqe",
        "k1_intra",
        "k1_inter",
        "k2_intra",
        "k2_inter",
        "clqe_warmup",
    ),
    "mmt": ("mmt_lr", "ema_alpha", "soft_ce_weight", "soft_tri_weight"),
    "ssg": ("ssg_lr", "ssg_source_weight"),
    "adversary": (
        "adversary",
        "mu",
        "merge",
        "adversary_features",
        "adversary_objective",
        "canu_condition",
        "disc_lr",
        "disc_steps",
    ),
    # notebook 04's own: they choose which runs a study has, not what any run computes
    "study": (
        "studies",
        "methods",
        "seeds",
        "sweep_seeds",
        "mu_grid",
        "coverage_grid",
        "fashion_grid",
        "fashion_adv_mu",
        "fashion_canu_mu",
        "coverage_method",
        "pretrain_seeds",
        "parallel_runs",
        "executor",
        "slurm_partition",
        "gpus_per_run",
        "cpus_per_run",
        "time_limit",
    ),
}
GROUP_OF = {name: group for group, names in GROUPS.items() for name in names}
# Parameters given a name of their own: old name -> new. A file or -p with the old name is refused with the new one;
# a run folder's record is read under the new names (runs.RunFolder.read_params), so recorded runs still resume.
RENAMED = {"adapt_lr": "mmt_lr", "bn_chunk": "bn_group_size"}
STUDY_FIELDS = GROUPS["study"]


def flat_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values with every group written as a mapping (`mmt: {mmt_lr: 0.0007}`) spread out flat; a name
    under a group it does not belong to is refused, naming its group. (`adversary` is a parameter and a group: a
    mapping there is the group.)"""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key not in GROUPS or not isinstance(value, Mapping):
            flat[key] = value
            continue
        for name, inner in value.items():
            if GROUP_OF.get(name, key) != key:
                raise ConfigError(f"parameter {name!r} belongs to group {GROUP_OF[name]!r}, not {key!r}")
            if name in flat or (name in values and name != key):
                raise ConfigError(f"parameter {name!r} given twice (flat and in group {key!r}): give it once")
            flat[name] = inner
    return flat


class ConfigError(ValueError):
    """A parameter set that does not match the typed definition."""


class RangeError(ConfigError):
    """A value of the right type outside the range its field declares."""


@dataclass(frozen=True)
class Bounds:
    """The range a numeric field allows, declared beside it: `k1: Annotated[int, Bounds(low=1)]`. Every float is
    also finite (nan and inf are refused everywhere)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded (a learning rate > 0)
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        return f"{'<' if self.high_open else '<='} {self.high}"


# The ranges most fields share, named for what they hold.
Count = Annotated[int, Bounds(low=1)]  # epochs, iterations, batch sizes, processes
Index = Annotated[int, Bounds(low=0)]  # seeds, epochs of a schedule, optional sizes (0: off)
Positive = Annotated[float, Bounds(low=0, low_open=True)]  # learning rates, radii
NonNegative = Annotated[float, Bounds(low=0)]  # loss weights, margins, weight decay
Fraction = Annotated[float, Bounds(low=0, high=1)]  # shares and mixing weights


@dataclass
class Params:
    """Every parameter of the lab, with its default. Notebooks use the subset they need."""

    # --- run bookkeeping
    run_name: str = "demo"  # a plain folder name under outputs/ (letters, digits, '.', '_', '-', '+', '=')
    seed: Index = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads (None: torch's default, recorded as found): sums split by thread, so a run repeats bit for bit at
    # one thread count only; a resumed run takes the count its params.yaml recorded
    threads: Optional[Count] = None
    # continue an existing run folder with more epochs or other learning rates (runs.AMENDABLE); any other
    # difference from its recorded parameters is refused. The change is recorded in its params.yaml (amendments)
    amend: bool = False
    # a loss term whose magnitude passes this stops the run as diverged (none of these losses comes near it in a
    # sound run: cross-entropy starts at log(classes)); non-finite losses and features always stop it
    loss_limit: Positive = 1000000.0
    interactive: bool = False
    # --- data: "synthetic:<preset>" (generated under data_root) or a real dataset name read from data_root
    source: str = "synthetic:source"
    target: str = "synthetic:target"
    data_root: str = "data"
    world_seed: Index = 0
    # camera-identity correlation knob of a synthetic target (None: its preset's value): 0 = every id walks
    # through 2 adjacent cameras only, 1 = through all of them (WorldSpec.camera_coverage)
    target_coverage: Optional[Fraction] = None
    # the paper's condition on a synthetic target (None: its preset's value): 0 = looks independent of the route,
    # 1 = each person dressed after the cameras they walk through (WorldSpec.area_fashion)
    target_area_fashion: Optional[Fraction] = None
    # how a person's images spread over their route (None: its preset's, even); small = a 'home' camera
    # (WorldSpec.visit_skew)
    target_visit_skew: Optional[NonNegative] = None
    # --- network input and evaluation
    # compact_ibn: the compact ResNet with IBN-a's instance normalisation in its first stages (the paper's backbones
    # are IBN-ResNet-50): docs/results.md "The study's regime" shows why the synthetic default needs it
    arch: str = "compact_ibn"
    height: Count = 64
    width: Count = 32
    eval_batch_size: Count = 256
    num_workers: Index = 0
    # processes of one training (notebooks 01 / 03): > 1 launches torchrun (DistributedDataParallel, one process per
    # GPU, or gloo on the CPU); `threads` is per process. A run's results depend on it, so it is recorded and compared
    nproc: Count = 1
    # test features of image + mirror image summed: pretraining's and MMT's evaluation (off: MMT's code), and SSG's
    # (on: SSG's code sums them)
    flip_eval: bool = False
    ssg_flip_eval: bool = True
    rerank: bool = False
    # --- source pretraining (MMT's recipe: Adam, warm-up then step decay; epochs scaled down for the synthetic world)
    n_models: Count = 2
    epochs: Count = 16
    iters_per_epoch: Count = 60
    lr: Positive = 0.00035
    weight_decay: NonNegative = 0.0005
    warmup_epochs: Index = 2
    milestones: list[Index] = field(default_factory=lambda: [12, 15])
    # a P x K batch: the batch-hard triplet needs two identities (a negative) and two images of each (a positive)
    batch_ids: Annotated[int, Bounds(low=2)] = 16
    instances: Annotated[int, Bounds(low=2)] = 4
    last_stride: Annotated[int, Bounds(low=1, high=2)] = 1
    label_smoothing: Annotated[float, Bounds(low=0, high=1, high_open=True)] = 0.1
    # the pretraining triplet: "soft" = softplus(d_ap - d_an), MMT's SoftTripletLoss(margin=0.0) of its pretrain
    # script; "hinge" = max(0, d_ap - d_an + triplet_margin). SSG's triplets always use the hinge with triplet_margin
    pretrain_triplet: Literal["soft", "hinge"] = "soft"
    triplet_margin: NonNegative = 0.5
    # MMT's PreTrainer: every iteration also forwards a shuffled target batch in train mode, without loss, so the
    # BatchNorm statistics of the source models already see the target. False: the source-only variant
    pretrain_target_forward: bool = True
    pretrained_weights: Optional[str] = None
    # mixed precision on CUDA (the CPU trains in float32 whatever these say): "float16" with a GradScaler, any CUDA
    # GPU; "bfloat16", unscaled, needs an Ampere or newer GPU (A100, H100)
    amp: bool = True
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    # convolutions in NHWC memory (channels_last): faster under mixed precision on tensor-core GPUs; on the CPU
    # the same function, computed in another order
    channels_last: bool = False
    # under torchrun on CUDA: BatchNorm statistics over the global batch (SyncBatchNorm) instead of each process's
    # share; torch's SyncBatchNorm runs on CUDA only, so a CPU (gloo) run with it is refused
    sync_bn: bool = False
    # images per BatchNorm statistics group in every training forward (pretraining, SSG, MMT, the discriminators):
    # 16 with a batch of 64 normalises as the published recipes' four GPUs of 16 did, on any number of devices;
    # running statistics follow each forward's first group (models/grouped_batchnorm.py). 0: each process's batch
    bn_group_size: Index = 0
    # --- clustering the target features of a pretrained model (MMT-DBSCAN's settings; k-means is MMT's original)
    pretrain_run: str = "pretrain"
    # notebooks 02 / 03 read only a pretraining run that finished every epoch of every model; true accepts one that
    # stopped part-way (recorded in params.yaml, as every parameter)
    accept_unfinished_pretraining: bool = False
    # notebook 02: a second pretraining run whose first clustering is shown beside pretrain_run's (e.g. one trained
    # with pretrain_target_forward false, to see what MMT's target forward changes); None: no comparison
    compare_pretrain_run: Optional[str] = None
    model_index: Count = 1
    # "true_ids": the target's true identities as pseudo-labels, the supervised upper bound (reads the target's labels)
    clustering: Literal["dbscan", "kmeans", "true_ids"] = "dbscan"
    # the k-reciprocal Jaccard distance DBSCAN reads: MMT's compute_jaccard_dist (the paper's code base; SSG's
    # re_ranking is the same), SpCL's compute_jaccard_distance (cluster/jaccard.py says how they differ), or "ca",
    # CA-Jaccard's camera-aware one (cluster/camera_jaccard.py), which reads each image's camera
    jaccard: Literal["mmt", "spcl", "ca"] = "mmt"
    # how the Jaccard distance finds each image's nearest images: "exact" compares every pair (N^2, the public codes'
    # way); "ivf" compares each image with those of its ivf_probes most similar k-means cells (ivf_lists cells, 0:
    # the power of two nearest sqrt(N)), an approximation for targets of 100,000 images and more (docs/guide.md:
    # with 16 probes the pseudo-labels of the images with an identity agreed with the exact ones at ARI >= 0.999 up to
    # N = 100,000); jaccard "ca" searches exactly only
    neighbour_search: Literal["exact", "ivf"] = "exact"
    ivf_lists: Index = 0
    ivf_probes: Count = 16
    # "ca" reads k1 only without ckrnns and k2 only without clqe (CA-Jaccard's code: k1 30, k2 6), but always
    # k2 != 1 as its switch for any query expansion
    k1: Count = 20
    k2: Count = 6
    # rho 0.004 on the synthetic worlds (paper: 0.0016): the rho rule takes the mean of the smallest rho share of
    # pairwise distances, which should scale with the share of same-id pairs: 0.0028 in the synthetic target
    # (300 ids, ~8 images each), 0.0012 in Market-1501's training set (751 ids, ~17 images each).
    rho: Annotated[float, Bounds(low=0, high=1, low_open=True)] = 0.004
    eps: Optional[Positive] = None  # None: the rho rule (mean of the smallest rho share of pairwise distances)
    min_samples: Count = 4
    n_clusters: Annotated[int, Bounds(low=2)] = 300  # k-means only
    # jaccard "ca" only, CA-Jaccard's train_caj.py names and defaults (ckrnns and clqe are flags there, off; on
    # here, the method as its paper and README run it). ckrnns: the k-reciprocal set is the union of those of the
    # k1_intra nearest in the image's camera and the k1_inter nearest in the other cameras (off: of the k1 nearest,
    # with the 2/3 expansion); clqe: each encoding averaged over the k2_intra nearest in the camera and the k2_inter
    # nearest outside it (off: the k2 nearest). The public code ranks only the k + 2 nearest: k2_intra <=
    # k1_intra + 2, k2_inter <= k1_inter + 2. clqe_warmup: the first clustering takes k2_intra = k2_inter = 3 (its
    # epoch 0); its README trains with k2_intra 2, k2_inter 4
    ckrnns: bool = True
    clqe: bool = True
    k1_intra: Count = 5
    k1_inter: Count = 20
    k2_intra: Count = 3
    k2_inter: Count = 3
    clqe_warmup: bool = True
    # --- adaptation on the target: MMT (DBSCAN) or SSG, plain or with the camera adversary (epochs scaled down)
    method: Method = "mmt"
    adversary: Adversary = "canu"
    mu: NonNegative = 0.1  # paper: 0.1 for CANU-MMT, 0.05 for CANU-SSG
    merge: Literal["sum", "product"] = "sum"  # how the conditional discriminator joins its two branches
    # what the discriminators read: "pooled" = the pooled feature before the BN-neck (what the triplet losses
    # read), "embedding" = the L2-normalised BN-neck output (what clustering, the centroids and ranking use)
    adversary_features: Literal["pooled", "embedding"] = "pooled"
    # the extractor's adversarial objective: "maximise_ce" = Eq. 4's -mu * camera cross-entropy (the paper's);
    # "uniform_ce" = mu * cross-entropy of D's output to the uniform camera distribution (bounded; an ablation)
    adversary_objective: Literal["maximise_ce", "uniform_ce"] = "maximise_ce"
    # what conditions CANU's discriminator: "pseudo" = each sample's pseudo-label cluster centroid (the paper's);
    # "oracle" = the centroid of its TRUE identity's features, a diagnostic that reads the target's labels
    # (never a method: it asks whether the mechanism helps when its condition is right). Needs adversary canu
    canu_condition: Literal["pseudo", "oracle"] = "pseudo"
    disc_lr: Positive = 0.00035  # discriminators: Adam (weight decay: weight_decay)
    # discriminator updates per training iteration, on the same detached features (1: the alternating min-max, one
    # step each; more: D catches up with the extractor before it plays, so fooling D means removing camera cues)
    disc_steps: Count = 1
    source_checkpoint: Literal["best", "last"] = "best"  # which source models of pretrain_run to start from
    adapt_epochs: Count = 6
    adapt_iters_per_epoch: Count = 60  # P x K iterations per clustering, MMT and SSG alike (MMT paper: 400)
    eval_every_epoch: bool = True  # False: evaluate after the last epoch only (pretraining and adaptation)
    umap_figures: bool = True  # notebook 03's UMAP before / after (about 20 s a run); the sweeps turn them off
    mmt_lr: Positive = 0.00035  # MMT: Adam
    ssg_lr: Positive = 0.00006  # SSG: SGD, momentum 0.9 (paper value, for ResNet-50 on real images)
    # SSG clusters with (1 - w) Jaccard + w (s_i + s_j), s_i: image i's distance to the source set (SSG's
    # lambda_value, 0.1); 0 clusters on the Jaccard distance alone
    ssg_source_weight: Fraction = 0.1
    ema_alpha: Fraction = 0.999
    soft_ce_weight: Fraction = 0.5
    soft_tri_weight: Fraction = 0.8
    # --- a study of notebook 04: which sweeps of notebook 03 to run (every other parameter is passed to each run)
    studies: list[Literal["table_iv", "oracle", "table_iii", "coverage", "ablation", "fashion"]] = field(
        default_factory=lambda: ["table_iv", "oracle", "table_iii", "coverage", "ablation"]
    )
    methods: list[Method] = field(default_factory=lambda: ["ssg", "mmt"])  # of every study but coverage
    seeds: list[Index] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # Table IV and the oracle arm
    sweep_seeds: list[Index] = field(default_factory=lambda: [0, 1, 2])  # Table III, coverage and the ablation
    # the paper's Table III
    mu_grid: list[NonNegative] = field(default_factory=lambda: [0.01, 0.05, 0.1, 0.2, 0.4, 1.8])
    coverage_grid: list[Fraction] = field(default_factory=lambda: [0.0, 0.2, 0.6])  # target_coverage values swept
    # target_area_fashion values swept by the "fashion" study (how much a person's looks depend on their cameras)
    fashion_grid: list[Fraction] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    # the fashion study's adversary weights: +Adv. at each mu of fashion_adv_mu, CANU and CANU [oracle condition] at
    # each of fashion_canu_mu (empty: the method's paper mu). Several: a sweep to choose each arm's mu on a validation
    # world (another world_seed); the claims compare one mu per arm
    fashion_adv_mu: list[NonNegative] = field(default_factory=list)
    fashion_canu_mu: list[NonNegative] = field(default_factory=list)
    coverage_method: Method = "mmt"  # the method of the world sweeps (coverage, fashion)
    # pairs of source models, each notebook 01 run with that seed (`seed` keeps its folder, pretrain_run; another seed
    # k: <pretrain_run>-seed<k>); empty: the one pair pretrain_run, and run names without a pair
    pretrain_seeds: list[Index] = field(default_factory=list)
    parallel_runs: Count = 1  # runs at once; the CPU threads are shared between them (slurm: the array's parallelism)
    # where the runs execute: "local" (notebook 03 in this machine's kernels), "slurm" (one submitit job per run, a
    # Slurm job array) or "submitit_local" (the same jobs as local processes, all at once: to try the cluster path)
    executor: Literal["local", "submitit_local", "slurm"] = "local"
    slurm_partition: Optional[str] = None  # None: the cluster's default partition
    gpus_per_run: Index = 0
    cpus_per_run: Count = 2  # also each job's thread count
    time_limit: Count = 240  # minutes per job; a job stopped by it is resubmitted by the next execution, and resumes


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        inner, bounds = typing.get_args(tp)[:2]
        return f"{'a finite ' if inner is float else ''}{_type_name(inner)} {bounds}"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Return `value` as type `tp`, or raise ConfigError naming what was expected and what was found."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        try:
            coerced = _coerce(name, value, args[0])
        except RangeError:  # a float that is not finite
            coerced = math.nan
        except ConfigError:
            raise ConfigError(
                f"parameter {name!r}: expected {_type_name(tp)}, found {value!r} ({type(value).__name__})"
                f"{_hint(args[0], value)}"
            ) from None
        if coerced not in args[1] or (isinstance(coerced, float) and not math.isfinite(coerced)):
            raise RangeError(f"parameter {name!r}: expected {_type_name(tp)}, found {value!r}")
        return coerced
    if origin is Literal:
        if value in args:
            return value
    elif origin in (Union, types.UnionType):
        out_of_range = None
        for option in args:
            try:
                return _coerce(name, value, option)
            except RangeError as err:  # the right type, outside its range: that is the message, not the union's
                out_of_range = err
            except ConfigError:
                continue
        if out_of_range is not None:
            raise out_of_range
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            return [_coerce(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value)]
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise RangeError(f"parameter {name!r}: expected a finite float, found {value!r}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported parameter type {tp!r} for {name}")
    raise ConfigError(
        f"parameter {name!r}: expected {_type_name(tp)}, found {value!r} ({type(value).__name__}){_hint(tp, value)}"
    )


def _hint(tp: Any, value: Any) -> str:
    """What a float written as text most likely meant."""
    if tp is not float or not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return " (and a number here must be finite)"
    return " (write decimals like 0.1: YAML reads 1e-1 as a string)"


def make_params(values: Mapping[str, Any] | None = None, base: Params | None = None) -> Params:
    """Validate `values` against `Params` (on top of `base` or the defaults) and return the typed set: names, types
    and each field's declared range (Bounds), all before anything runs."""
    hints = typing.get_type_hints(Params, include_extras=True)
    known = [f.name for f in dataclasses.fields(Params)]
    values = flat_values(values or {})
    renamed = [f"{old!r} is now {RENAMED[old]!r}" for old in values if old in RENAMED]
    if renamed:
        raise ConfigError(f"renamed parameter(s): {'; '.join(renamed)} (the same setting: use the new name)")
    unknown = [k for k in values if k not in hints]
    if unknown:
        lines = []
        for k in unknown:
            close = difflib.get_close_matches(k, known, n=1)
            lines.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError("unknown parameter(s): " + ", ".join(lines) + ". Known: " + ", ".join(known))
    coerced = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    for name in RUN_NAME_FIELDS:
        if coerced.get(name) is not None:
            check_run_name(coerced[name], name)
    merged = dataclasses.replace(base or Params(), **coerced)
    if merged.canu_condition == "oracle" and merged.adversary != "canu":
        raise ConfigError(
            f"parameter 'canu_condition': 'oracle' conditions CANU's discriminator, but adversary is "
            f"{merged.adversary!r}: set adversary canu, or canu_condition pseudo"
        )
    if merged.jaccard == "ca":
        check_camera_aware_params(merged)
    if merged.sync_bn and merged.bn_group_size:
        raise ConfigError(
            f"parameters 'sync_bn' and 'bn_group_size': one takes BatchNorm statistics over the global batch, the "
            f"other over groups of {merged.bn_group_size} images: set sync_bn false, or bn_group_size 0"
        )
    return merged


def check_camera_aware_params(params: Params) -> None:
    """What CA-Jaccard's code leaves undefined (cluster/camera_jaccard.py refuses it too): query expansion beyond
    the k + 2 points its rankings order, and clqe with k2 1, where it silently skips CLQE."""
    for short, long in (("k2_intra", "k1_intra"), ("k2_inter", "k1_inter")):
        if getattr(params, short) > getattr(params, long) + 2:
            raise ConfigError(
                f"parameter {short!r}: CA-Jaccard ranks only the {long} + 2 = {getattr(params, long) + 2} nearest, "
                f"found {getattr(params, short)}: lower {short} or raise {long}"
            )
    if not params.clqe and params.k2 > params.k1 + 2:
        raise ConfigError(
            f"parameter 'k2': with jaccard 'ca' and clqe off, CA-Jaccard ranks only the k1 + 2 = {params.k1 + 2} "
            f"nearest, found {params.k2}"
        )
    if params.neighbour_search != "exact":
        raise ConfigError(
            f"parameter 'neighbour_search': jaccard 'ca' searches exactly only, found {params.neighbour_search!r}"
        )
    if params.clqe and params.k2 == 1:
        raise ConfigError(
            "parameters 'clqe' and 'k2': CA-Jaccard's code runs no query expansion at all when k2 is 1, CLQE "
            "included: set k2 > 1 with clqe on, or clqe false for no query expansion"
        )


RUN_NAME_FIELDS = ("run_name", "pretrain_run", "compare_pretrain_run")
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


def check_run_name(name: str, parameter: str = "run_name") -> str:
    """A run name is one plain folder under outputs/: no path separator, no '..', no hidden folder."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise ConfigError(
            f"parameter {parameter!r}: expected a plain folder name (letters, digits and '.', '_', "
            f"'-', '+', '=', starting with a letter or digit), found {name!r}"
        )
    return name


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names a key twice (PyYAML keeps the last one silently: a file
    with two `mu:` lines would run the second)."""

    def construct_mapping(self, node, deep=False):
        first: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first[key].line + 1}): give each parameter once",
                    key_node.start_mark,
                )
            first[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str) -> Any:
    """`text` read as YAML, strictly (no duplicate keys); a syntax error is one ConfigError line naming `source`
    and the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: plain values only, never Python objects
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else source
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a parameter file: a YAML mapping of name -> value, each name once."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameter file not found: {path}")
    data = parse_yaml(path.read_text(), str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of parameter names to values, found {type(data).__name__}")
    return data


def parse_parameters(pairs: list[tuple[str, str]] | list[list[str]]) -> dict[str, Any]:
    """The command line's `-p NAME VALUE` pairs, each value read as YAML (0.1, true, [1, 2], text); a name given
    twice is refused, as in a file."""
    texts: dict[str, str] = {}
    for name, text in pairs:
        if name in texts:
            raise ConfigError(f"-p {name} given twice ({texts[name]}, then {text}): give each parameter once")
        texts[name] = text
    return {name: parse_yaml(text, f"-p {name} {text!r}") for name, text in texts.items()}


def load_params(*files: str | Path, overrides: Mapping[str, Any] | None = None) -> Params:
    """Defaults, then each YAML file in order, then `overrides`; every layer validated."""
    params = Params()
    for path in files:
        values = read_yaml(path)  # its errors name the file already
        try:
            params = make_params(values, base=params)
        except ConfigError as err:
            raise type(err)(f"{path}: {err}") from None
    return make_params(overrides or {}, base=params)


def as_dict(params: Params) -> dict[str, Any]:
    return dataclasses.asdict(params)
