"""A world's plan, pure data: its palette and camera styles, the people and the cameras each walks through, and
which image goes to which split under which file name."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .spec import FASHION_STREAM, PLAN_STREAM, STYLE_STREAM, TEXTURES, VISIT_STREAM, WorldSpec

Colour = tuple[float, float, float]


class Palette(NamedTuple):
    """A world's clothing / skin / hair colours and how common each attribute value is in it."""

    clothing: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    shoes: np.ndarray
    priors: dict[str, np.ndarray]


class CameraStyle(NamedTuple):
    """How one camera sees: colour response, optics, background and the viewpoints it gets."""

    gains: Colour
    brightness: float
    contrast: float
    gamma: float
    blur: float
    downscale: float
    noise: float
    wall: Colour
    accent: Colour
    floor: Colour
    texture: str
    texture_period: float
    texture_seed: int
    horizon: float
    pose_probs: tuple[float, float, float, float]
    person_scale: float


class Identity(NamedTuple):
    """What a person looks like and where they walk; single attributes are common, the combination is unique."""

    upper: Colour
    upper_accent: Colour
    upper_pattern: str
    sleeves: str
    lower: Colour
    lower_accent: Colour
    lower_pattern: str
    lower_kind: str
    skin: Colour
    hair: Colour
    hair_style: str
    hat: Colour
    bag: str
    bag_colour: Colour
    shoes: Colour
    build: float
    stature: float
    route: tuple[int, ...]
    direction: int

    def appearance(self) -> tuple:
        """What makes the person recognisable: visible attributes only (no hat colour without a hat...)."""
        return (
            self.upper,
            self.upper_accent if self.upper_pattern != "solid" else None,
            self.upper_pattern,
            self.sleeves,
            self.lower,
            self.lower_accent if self.lower_pattern != "solid" else None,
            self.lower_pattern,
            self.lower_kind,
            self.skin,
            self.hair,
            self.hair_style,
            self.hat if self.hair_style == "hat" else None,
            self.bag,
            self.bag_colour if self.bag != "none" else None,
            self.shoes,
            self.build,
        )


class PlannedImage(NamedTuple):
    """One image to render: split, labels, file name, and what it shows."""

    split: str
    pid: int
    camid: int
    file_name: str
    kind: str  # "person", "background" (distractor) or "partial" (distractor: part of a passer-by)
    identity: int  # index into WorldPlan.identities (pid - 1 for people, a passer-by for "partial"), else -1


@dataclass(frozen=True)
class WorldPlan:
    """Everything about a world except its pixels: identities[pid - 1] is person pid; passers-by come after."""

    spec: WorldSpec
    seed: int
    cameras: tuple[CameraStyle, ...]
    identities: tuple[Identity, ...]
    images: tuple[PlannedImage, ...]


UPPER_PATTERNS = {"solid": 4, "hstripes": 1.5, "vstripes": 1, "checks": 1, "jacket": 1.5}
LOWER_PATTERNS = {"solid": 6, "vstripes": 1, "checks": 1}
LOWER_KINDS = {"trousers": 5, "shorts": 2, "skirt": 1.5}
SLEEVES = {"long": 1, "short": 1}
HAIR_STYLES = {"short": 3, "long": 2, "hat": 1}
BAGS = {"none": 3, "backpack": 2, "shoulder": 1.5}
BUILDS = {0.85: 1, 1.0: 2, 1.15: 1}
SKIN_TONES = [(0.96, 0.80, 0.69), (0.90, 0.70, 0.55), (0.78, 0.57, 0.42), (0.55, 0.38, 0.26), (0.36, 0.24, 0.16)]
HAIR_COLOURS = [
    (0.06, 0.05, 0.05),
    (0.25, 0.15, 0.08),
    (0.45, 0.30, 0.15),
    (0.85, 0.72, 0.45),
    (0.65, 0.65, 0.65),
    (0.55, 0.20, 0.08),
]
SHOE_COLOURS = [(0.08, 0.08, 0.08), (0.92, 0.92, 0.92), (0.35, 0.22, 0.12), (0.45, 0.45, 0.50)]


def _hsv(h: float, s: float, v: float) -> Colour:
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _jitter(rng: np.random.Generator, colours, amount: float) -> np.ndarray:
    return np.clip(np.asarray(colours) + rng.uniform(-amount, amount, np.shape(colours)), 0, 1)


def _perturbed_prior(rng: np.random.Generator, base_weights) -> np.ndarray:
    """A world's own frequencies around base weights (Gamma noise = Dirichlet), so worlds differ in fashion too."""
    weights = np.asarray(list(base_weights), dtype=float) * rng.gamma(4.0, 0.25, len(base_weights))
    return weights / weights.sum()


def draw_palette(rng: np.random.Generator) -> Palette:
    """Nine hues evenly spread from a random offset plus four tinted neutrals; neutrals are worn more often."""
    offset, saturation, value = rng.random(), rng.uniform(0.5, 0.85), rng.uniform(0.5, 0.85)
    hues = [
        _hsv(
            offset + k / 9 + rng.uniform(-0.02, 0.02),
            saturation + rng.uniform(-0.15, 0.1),
            value + rng.uniform(-0.2, 0.15),
        )
        for k in range(9)
    ]
    tint = rng.uniform(-0.04, 0.04, 3)
    neutrals = [np.clip(np.full(3, level) + tint, 0, 1) for level in (0.1, 0.3, 0.62, 0.9)]
    clothing = np.array(hues + neutrals)
    priors = {
        "clothing": _perturbed_prior(rng, [1] * 9 + [2.5] * 4),
        "skin": _perturbed_prior(rng, [1] * len(SKIN_TONES)),
        "hair": _perturbed_prior(rng, [3, 3, 2, 1, 1, 0.5]),
        "shoes": _perturbed_prior(rng, [3, 2, 1, 1]),
    }
    for name, table in (
        ("upper_pattern", UPPER_PATTERNS),
        ("lower_pattern", LOWER_PATTERNS),
        ("lower_kind", LOWER_KINDS),
        ("sleeves", SLEEVES),
        ("hair_style", HAIR_STYLES),
        ("bag", BAGS),
        ("build", BUILDS),
    ):
        priors[name] = _perturbed_prior(rng, table.values())
    return Palette(
        clothing,
        _jitter(rng, SKIN_TONES, 0.03),
        _jitter(rng, HAIR_COLOURS, 0.04),
        _jitter(rng, SHOE_COLOURS, 0.03),
        priors,
    )


def draw_camera_styles(spec: WorldSpec, rng: np.random.Generator) -> tuple[CameraStyle, ...]:
    """One strong style per camera; style_strength pulls every parameter toward a neutral camera."""
    strength = spec.style_strength
    textures = [TEXTURES[i % len(TEXTURES)] for i in rng.permutation(max(spec.num_cameras, len(TEXTURES)))]
    neutral_wall = np.array([0.55, 0.55, 0.55])

    def toward(neutral, value):
        return neutral + strength * (np.asarray(value) - neutral)

    def background_colour(saturation, value) -> Colour:
        colour = toward(neutral_wall, _hsv(rng.random(), rng.uniform(*saturation), rng.uniform(*value)))
        return tuple(float(c) for c in np.clip(colour, 0, 1))

    styles = []
    for camera in range(spec.num_cameras):
        pose_bias = 0.85 * rng.dirichlet(np.full(4, 0.8)) + 0.15 / 4
        styles.append(
            CameraStyle(
                gains=tuple(float(g) for g in toward(1.0, 1 + rng.uniform(-0.3, 0.3, 3))),
                brightness=float(toward(0.0, rng.uniform(-0.12, 0.12))),
                contrast=float(toward(1.0, rng.uniform(0.65, 1.25))),
                gamma=float(toward(1.0, rng.uniform(0.75, 1.35))),
                blur=float(toward(0.0, rng.uniform(0.0, 1.2))),
                downscale=float(toward(1.0, rng.choice([1.0, 1.0, 1.5, 2.0, 2.5]))),
                noise=float(0.01 + toward(0.0, rng.uniform(0.0, 0.035))),
                wall=background_colour((0.1, 0.6), (0.3, 0.85)),
                accent=background_colour((0.2, 0.8), (0.2, 0.9)),
                floor=background_colour((0.0, 0.3), (0.25, 0.7)),
                texture=textures[camera],
                texture_period=float(rng.uniform(0.06, 0.16)),
                texture_seed=int(rng.integers(2**31)),
                horizon=float(rng.uniform(0.45, 0.8)),
                pose_probs=_probabilities(toward(np.full(4, 0.25), pose_bias)),
                person_scale=float(toward(0.86, rng.uniform(0.8, 0.92))),
            )
        )
    return tuple(styles)


def _probabilities(weights: np.ndarray) -> tuple[float, ...]:
    """Clip to at least 1% each and renormalise (a style_strength above 1 can push weights below 0)."""
    weights = np.clip(weights, 0.01, None)
    return tuple(float(w) for w in weights / weights.sum())


def draw_route(spec: WorldSpec, rng: np.random.Generator) -> tuple[int, ...]:
    """The adjacent cameras one person walks through: a run of 2 + Binomial(K - 2, coverage) consecutive cameras."""
    k = spec.num_cameras
    length = 2 + int(rng.binomial(k - 2, spec.camera_coverage))
    if spec.camera_layout == "ring":
        start = int(rng.integers(k))
        return tuple(sorted((start + step) % k for step in range(length)))
    start = int(rng.integers(k - length + 1))
    return tuple(range(start, start + length))


# What area_fashion lets a camera's surroundings decide (skin tone, build and shoes stay the world's).
FASHION_ATTRIBUTES = (
    "clothing",
    "hair",
    "upper_pattern",
    "lower_pattern",
    "lower_kind",
    "sleeves",
    "hair_style",
    "bag",
)
# Each camera's prior is Dirichlet(FASHION_CONCENTRATION x categories x the world's prior): a few values dominate
# each camera's crowd. On the target preset at area_fashion 1, adjusted MI(clothing colour; camera) is 0.07-0.11 nats
# (0.01-0.02 at 0; world_readout): a route averages 2-3 cameras' fashions, which caps how much the camera can tell.
FASHION_CONCENTRATION = 0.15


def draw_camera_fashions(spec: WorldSpec, palette: Palette) -> list[dict[str, np.ndarray]]:
    """Each camera's own priors over the FASHION_ATTRIBUTES, drawn from a stream of their own."""
    rng = np.random.default_rng([FASHION_STREAM, spec.style_seed])
    return [
        {
            name: rng.dirichlet(FASHION_CONCENTRATION * len(palette.priors[name]) * palette.priors[name])
            for name in FASHION_ATTRIBUTES
        }
        for _ in range(spec.num_cameras)
    ]


def route_priors(
    palette: Palette, fashions: list[dict[str, np.ndarray]] | None, route: tuple[int, ...], area_fashion: float
) -> dict[str, np.ndarray]:
    """The priors one person draws from: (1 - lambda) x the world's + lambda x the mean of their route's cameras'
    (the world's own, unchanged, when lambda is 0 or the person walks no route)."""
    if not fashions or not route or area_fashion == 0:
        return palette.priors
    mixed = dict(palette.priors)
    for name in FASHION_ATTRIBUTES:
        local = np.mean([fashions[camera][name] for camera in route], axis=0)
        prior = (1 - area_fashion) * palette.priors[name] + area_fashion * local
        mixed[name] = prior / prior.sum()
    return mixed


def _pick(rng: np.random.Generator, options, probs):
    return options[rng.choice(len(options), p=probs)]


def draw_identity(
    rng: np.random.Generator, palette: Palette, route: tuple[int, ...], priors: dict[str, np.ndarray] | None = None
) -> Identity:
    """A random person: every attribute drawn from `priors` (the world's frequencies unless given, see
    `route_priors`); accents differ from main colours."""
    p = palette.priors if priors is None else priors

    def colour(table: np.ndarray, probs: np.ndarray, avoid: int | None = None) -> tuple[Colour, int]:
        if avoid is not None:
            probs = probs.copy()
            probs[avoid] = 0
            probs /= probs.sum()
        index = int(rng.choice(len(table), p=probs))
        return tuple(float(c) for c in table[index]), index

    upper, upper_index = colour(palette.clothing, p["clothing"])
    lower, lower_index = colour(palette.clothing, p["clothing"])
    return Identity(
        upper=upper,
        upper_accent=colour(palette.clothing, p["clothing"], avoid=upper_index)[0],
        upper_pattern=_pick(rng, list(UPPER_PATTERNS), p["upper_pattern"]),
        sleeves=_pick(rng, list(SLEEVES), p["sleeves"]),
        lower=lower,
        lower_accent=colour(palette.clothing, p["clothing"], avoid=lower_index)[0],
        lower_pattern=_pick(rng, list(LOWER_PATTERNS), p["lower_pattern"]),
        lower_kind=_pick(rng, list(LOWER_KINDS), p["lower_kind"]),
        skin=colour(palette.skin, p["skin"])[0],
        hair=colour(palette.hair, p["hair"])[0],
        hair_style=_pick(rng, list(HAIR_STYLES), p["hair_style"]),
        hat=colour(palette.clothing, p["clothing"])[0],
        bag=_pick(rng, list(BAGS), p["bag"]),
        bag_colour=colour(palette.clothing, p["clothing"])[0],
        shoes=colour(palette.shoes, p["shoes"])[0],
        build=float(_pick(rng, list(BUILDS), p["build"])),
        stature=float(rng.uniform(0.9, 1.0)),
        route=route,
        direction=int(rng.choice([-1, 1])),
    )


def draw_identities(spec: WorldSpec, count: int, palette: Palette, rng: np.random.Generator) -> list[Identity]:
    """`count` people with pairwise different appearances; the first spec ids walk routes, the rest pass by."""
    num_ids = spec.num_train_ids + spec.num_test_ids
    identities, seen = [], set()
    while len(identities) < count:
        route = draw_route(spec, rng) if len(identities) < num_ids else ()
        identity = draw_identity(rng, palette, route)
        if identity.appearance() not in seen:
            seen.add(identity.appearance())
            identities.append(identity)
    return identities


def dress_after_routes(spec: WorldSpec, seed: int, identities: list[Identity], palette: Palette) -> list[Identity]:
    """The same people on the same routes, their FASHION_ATTRIBUTES drawn again from `route_priors` (from a random
    stream of their own, so that routes, images and everything else stay those of area_fashion 0); skin, build,
    shoes and stature are kept. Appearances stay pairwise different."""
    fashions = draw_camera_fashions(spec, palette)
    rng = np.random.default_rng([FASHION_STREAM, spec.style_seed, seed])
    kept = ("skin", "shoes", "build", "stature", "route", "direction")
    dressed: list[Identity] = []
    seen = {identity.appearance() for identity in identities if not identity.route}
    for identity in identities:
        if not identity.route:
            dressed.append(identity)
            continue
        while True:
            priors = route_priors(palette, fashions, identity.route, spec.area_fashion)
            candidate = draw_identity(rng, palette, identity.route, priors)
            candidate = candidate._replace(**{name: getattr(identity, name) for name in kept})
            if candidate.appearance() not in seen:
                break
        seen.add(candidate.appearance())
        dressed.append(candidate)
    return dressed


def _visits(spec: WorldSpec, seed: int, identities: list[Identity], rng: np.random.Generator) -> list[list[tuple]]:
    """Groups of (split, pid, camid, kind, identity) images, one group per person per camera or per distractor."""
    low, high = spec.images_per_camera
    skew = np.random.default_rng([VISIT_STREAM, spec.style_seed, seed]) if spec.visit_skew > 0 else None
    visits = []
    for pid in range(1, spec.num_train_ids + spec.num_test_ids + 1):
        route = identities[pid - 1].route
        counts = [int(rng.integers(low, high + 1)) for _ in route] if skew is not None else None
        if skew is not None:  # the same total, spread unevenly: each camera its minimum, the rest by weight
            weights = skew.dirichlet(np.full(len(route), spec.visit_skew))
            counts = list(low + skew.multinomial(sum(counts) - low * len(route), weights))
        for place, camid in enumerate(route):
            count = int(rng.integers(low, high + 1)) if counts is None else int(counts[place])
            if pid <= spec.num_train_ids:
                visits.append([("train", pid, camid, "person", pid - 1)] * count)
            else:
                query = int(rng.integers(count))
                visits.append(
                    [("query" if i == query else "gallery", pid, camid, "person", pid - 1) for i in range(count)]
                )
    first_passer_by = spec.num_train_ids + spec.num_test_ids
    for n in range(spec.num_distractors):
        camid = int(rng.integers(spec.num_cameras))
        if rng.random() < 0.5:
            visits.append([("gallery", 0, camid, "background", -1)])
        else:
            visits.append([("gallery", 0, camid, "partial", first_passer_by + n)])
    return visits


def plan_world(spec: WorldSpec, seed: int = 0) -> WorldPlan:
    """Draw the cameras, the people, their routes and every image's split and Market-style file name.

    Visits (a person in a camera, or a distractor) happen in random order; each camera's frame counter runs on, so
    a person's images in one camera are consecutive frames, and names are unique.
    """
    cameras = draw_camera_styles(spec, np.random.default_rng([STYLE_STREAM, spec.style_seed]))
    palette = draw_palette(np.random.default_rng([STYLE_STREAM, spec.style_seed, 1]))
    rng = np.random.default_rng([PLAN_STREAM, spec.style_seed, seed])
    num_people = spec.num_train_ids + spec.num_test_ids + spec.num_distractors
    identities = draw_identities(spec, num_people, palette, rng)
    if spec.area_fashion > 0:
        identities = dress_after_routes(spec, seed, identities, palette)
    visits = _visits(spec, seed, identities, rng)
    frames = np.zeros(spec.num_cameras, dtype=int)
    images = []
    for visit_index in rng.permutation(len(visits)):
        for split, pid, camid, kind, identity in visits[visit_index]:
            frames[camid] += int(rng.integers(1, 30))
            file_name = f"{pid:04d}_c{camid + 1}s1_{frames[camid]:06d}_01.png"
            images.append(PlannedImage(split, pid, camid, file_name, kind, identity))
    return WorldPlan(spec, seed, cameras, tuple(identities), tuple(images))
