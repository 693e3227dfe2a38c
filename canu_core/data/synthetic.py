"""Synthetic multi-camera re-ID worlds: the lab's embedded default datasets.

Real re-ID datasets cannot be downloaded here, so the lab renders its own, keeping the two properties CANU-ReID is
about (paper, section IV):
- every camera has a strong style of its own (colour cast, contrast, blur, background, viewpoint), so untrained
  features group images by camera rather than by person;
- people walk through a few *adjacent* cameras only, so identity and camera are correlated: the condition under
  which a plain camera adversary causes negative transfer (`WorldSpec.camera_coverage` sets how strongly).

A world is first planned (people, the cameras each walks through, which image goes to which split: pure data), then
rendered image by image, each from its own random stream, and written in Market-1501 layout and naming.
`WorldSpec.style_seed` draws the cameras and the clothing palette (a world's domain); `seed` draws the people and
their images. The same spec and seed always give the same bytes.
"""
from __future__ import annotations

import colorsys
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter
from sklearn.metrics import mutual_info_score
from tqdm.auto import tqdm

from .datasets import MARKET_FOLDERS, read_market1501
from .records import ReidDataset

RENDER_VERSION = 1  # bump when the renderer changes, so old world folders are not silently reused
MANIFEST_NAME = "world.json"
CAMERA_LAYOUTS = ("line", "ring")
POSES = ("front", "back", "left", "right")
REVERSED_POSE = {"front": "back", "back": "front", "left": "right", "right": "left"}
TEXTURES = ("bricks", "stripes", "windows", "foliage", "gradient")
BODY_WIDTH = 1.3  # widens every body part: detection crops are tight, people fill about half their width
REFERENCE_HEIGHT = 128  # blur radii are given for this image height and scaled with it
# Independent random streams, so that e.g. changing the number of ids does not change the camera styles.
STYLE_STREAM, PLAN_STREAM, IMAGE_STREAM = 1, 2, 3


@dataclass(frozen=True)
class WorldSpec:
    """Every knob of a synthetic world; checked on construction (ValueError listing every bad value)."""

    name: str = "synthetic"
    """Dataset name, as ReidDataset.name."""
    num_cameras: int = 6
    """Number of cameras K (2 to 99), placed on a line or a ring."""
    camera_layout: str = "line"
    """'line' (cameras 1..K along a corridor) or 'ring' (camera K is also next to camera 1)."""
    camera_coverage: float = 0.25
    """0: every id walks through 2 adjacent cameras; 1: through all K; between: 2 + Binomial(K - 2, coverage)."""
    num_train_ids: int = 300
    """Identities in bounding_box_train/ (pids 1..num_train_ids)."""
    num_test_ids: int = 300
    """Identities in query/ and bounding_box_test/ (the pids after the train ones): disjoint from train."""
    images_per_camera: tuple[int, int] = (2, 3)
    """Inclusive range of an id's images in each camera it walks through; min >= 2 so every query has a match."""
    num_distractors: int = 200
    """Gallery images with pid 0: background-only crops and partial bodies of passers-by."""
    height: int = 128
    """Image height in pixels (>= 32)."""
    width: int = 64
    """Image width in pixels (>= 16)."""
    style_seed: int = 0
    """Draws the camera styles and the clothing palette: worlds with different style seeds are different domains."""
    style_strength: float = 1.0
    """Scales how far cameras depart from a neutral one: 0 = all identical (plain grey scene), 1 = default, <= 2."""
    occlusion_rate: float = 0.15
    """Fraction of person images partly hidden by an occluder (a pole, a bench, a car...)."""

    def __post_init__(self):
        object.__setattr__(self, "images_per_camera", tuple(self.images_per_camera))
        problems = self._problems()
        if problems:
            raise ValueError("invalid WorldSpec: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        def is_int(value) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        checks = [
            (is_int(self.num_cameras) and 2 <= self.num_cameras <= 99,
             f"num_cameras must be an int in [2, 99], got {self.num_cameras!r}"),
            (self.camera_layout in CAMERA_LAYOUTS,
             f"camera_layout must be one of {CAMERA_LAYOUTS}, got {self.camera_layout!r}"),
            (0.0 <= self.camera_coverage <= 1.0, f"camera_coverage must be in [0, 1], got {self.camera_coverage!r}"),
            (is_int(self.num_train_ids) and self.num_train_ids >= 1,
             f"num_train_ids must be an int >= 1, got {self.num_train_ids!r}"),
            (is_int(self.num_test_ids) and self.num_test_ids >= 1,
             f"num_test_ids must be an int >= 1, got {self.num_test_ids!r}"),
            (not (is_int(self.num_train_ids) and is_int(self.num_test_ids))
             or self.num_train_ids + self.num_test_ids <= 9999,
             "num_train_ids + num_test_ids must be <= 9999 (pids have 4 digits in Market naming)"),
            (len(self.images_per_camera) == 2 and all(map(is_int, self.images_per_camera))
             and 2 <= self.images_per_camera[0] <= self.images_per_camera[1],
             f"images_per_camera must be (min, max) ints with 2 <= min <= max, got {self.images_per_camera!r}"),
            (is_int(self.num_distractors) and self.num_distractors >= 0,
             f"num_distractors must be an int >= 0, got {self.num_distractors!r}"),
            (is_int(self.height) and self.height >= 32, f"height must be an int >= 32, got {self.height!r}"),
            (is_int(self.width) and self.width >= 16, f"width must be an int >= 16, got {self.width!r}"),
            (is_int(self.style_seed), f"style_seed must be an int, got {self.style_seed!r}"),
            (0.0 <= self.style_strength <= 2.0, f"style_strength must be in [0, 2], got {self.style_strength!r}"),
            (0.0 <= self.occlusion_rate <= 1.0, f"occlusion_rate must be in [0, 1], got {self.occlusion_rate!r}"),
        ]
        return [message for ok, message in checks if not ok]


PRESETS: dict[str, WorldSpec] = {
    # Market-like: 6 cameras along a corridor. style_strength 0.5: calibrated so that the compact network's source
    # pretraining (notebook 01 defaults) reaches a high source mAP while direct transfer stays far lower; at 1.0
    # it learned too slowly for a CPU budget (source mAP ~30% after 12 epochs, target ~1%).
    "source": WorldSpec(name="synthetic_source", num_cameras=6, camera_layout="line", camera_coverage=0.25,
                        style_seed=1, style_strength=0.5),
    # Duke-like: 8 cameras on a campus loop, another palette and other camera styles. style_strength 0.4:
    # calibrated for adaptation (README "Calibrating the target", benchmarks/calibrate_target.py): at 0.5 the
    # source models' target features were so camera-bound (pseudo-label pair precision 0.12) that MMT lost mAP
    # from its first epoch; at 0.3 the pseudo-labels carried barely more camera information than the true ids
    # (MI 0.92 vs 0.86 nats); at 0.4 they carry 1.25 nats, with direct transfer at 22.2% mAP.
    "target": WorldSpec(name="synthetic_target", num_cameras=8, camera_layout="ring", camera_coverage=0.2,
                        style_seed=2, style_strength=0.4),
    # For tests: about 100 images, generated in about a second.
    "tiny": WorldSpec(name="synthetic_tiny", num_cameras=3, camera_coverage=0.5, num_train_ids=6, num_test_ids=6,
                      images_per_camera=(2, 4), num_distractors=10, height=64, width=32, style_seed=3),
    # The tiny world's target: other cameras, styles and people (smoke runs adapt tiny -> tiny_target).
    "tiny_target": WorldSpec(name="synthetic_tiny_target", num_cameras=4, camera_layout="ring", camera_coverage=0.5,
                             num_train_ids=6, num_test_ids=6, images_per_camera=(2, 4), num_distractors=10,
                             height=64, width=32, style_seed=4),
}


# ---------------------------------------------------------------- the plan: people, cameras, images (pure data)

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
        return (self.upper, self.upper_accent if self.upper_pattern != "solid" else None, self.upper_pattern,
                self.sleeves, self.lower, self.lower_accent if self.lower_pattern != "solid" else None,
                self.lower_pattern, self.lower_kind, self.skin, self.hair, self.hair_style,
                self.hat if self.hair_style == "hat" else None, self.bag,
                self.bag_colour if self.bag != "none" else None, self.shoes, self.build)


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
HAIR_COLOURS = [(0.06, 0.05, 0.05), (0.25, 0.15, 0.08), (0.45, 0.30, 0.15), (0.85, 0.72, 0.45), (0.65, 0.65, 0.65),
                (0.55, 0.20, 0.08)]
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
    hues = [_hsv(offset + k / 9 + rng.uniform(-0.02, 0.02), saturation + rng.uniform(-0.15, 0.1),
                 value + rng.uniform(-0.2, 0.15)) for k in range(9)]
    tint = rng.uniform(-0.04, 0.04, 3)
    neutrals = [np.clip(np.full(3, level) + tint, 0, 1) for level in (0.1, 0.3, 0.62, 0.9)]
    clothing = np.array(hues + neutrals)
    priors = {
        "clothing": _perturbed_prior(rng, [1] * 9 + [2.5] * 4),
        "skin": _perturbed_prior(rng, [1] * len(SKIN_TONES)),
        "hair": _perturbed_prior(rng, [3, 3, 2, 1, 1, 0.5]),
        "shoes": _perturbed_prior(rng, [3, 2, 1, 1]),
    }
    for name, table in (("upper_pattern", UPPER_PATTERNS), ("lower_pattern", LOWER_PATTERNS),
                        ("lower_kind", LOWER_KINDS), ("sleeves", SLEEVES), ("hair_style", HAIR_STYLES),
                        ("bag", BAGS), ("build", BUILDS)):
        priors[name] = _perturbed_prior(rng, table.values())
    return Palette(clothing, _jitter(rng, SKIN_TONES, 0.03), _jitter(rng, HAIR_COLOURS, 0.04),
                   _jitter(rng, SHOE_COLOURS, 0.03), priors)


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
        styles.append(CameraStyle(
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
        ))
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


def _pick(rng: np.random.Generator, options, probs):
    return options[rng.choice(len(options), p=probs)]


def draw_identity(rng: np.random.Generator, palette: Palette, route: tuple[int, ...]) -> Identity:
    """A random person: every attribute drawn from the world's frequencies; accents differ from main colours."""
    p = palette.priors

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
        upper=upper, upper_accent=colour(palette.clothing, p["clothing"], avoid=upper_index)[0],
        upper_pattern=_pick(rng, list(UPPER_PATTERNS), p["upper_pattern"]),
        sleeves=_pick(rng, list(SLEEVES), p["sleeves"]),
        lower=lower, lower_accent=colour(palette.clothing, p["clothing"], avoid=lower_index)[0],
        lower_pattern=_pick(rng, list(LOWER_PATTERNS), p["lower_pattern"]),
        lower_kind=_pick(rng, list(LOWER_KINDS), p["lower_kind"]),
        skin=colour(palette.skin, p["skin"])[0], hair=colour(palette.hair, p["hair"])[0],
        hair_style=_pick(rng, list(HAIR_STYLES), p["hair_style"]), hat=colour(palette.clothing, p["clothing"])[0],
        bag=_pick(rng, list(BAGS), p["bag"]), bag_colour=colour(palette.clothing, p["clothing"])[0],
        shoes=colour(palette.shoes, p["shoes"])[0], build=float(_pick(rng, list(BUILDS), p["build"])),
        stature=float(rng.uniform(0.9, 1.0)), route=route, direction=int(rng.choice([-1, 1])),
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


def _visits(spec: WorldSpec, identities: list[Identity], rng: np.random.Generator) -> list[list[tuple]]:
    """Groups of (split, pid, camid, kind, identity) images, one group per person per camera or per distractor."""
    low, high = spec.images_per_camera
    visits = []
    for pid in range(1, spec.num_train_ids + spec.num_test_ids + 1):
        for camid in identities[pid - 1].route:
            count = int(rng.integers(low, high + 1))
            if pid <= spec.num_train_ids:
                visits.append([("train", pid, camid, "person", pid - 1)] * count)
            else:
                query = int(rng.integers(count))
                visits.append([("query" if i == query else "gallery", pid, camid, "person", pid - 1)
                               for i in range(count)])
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
    visits = _visits(spec, identities, rng)
    frames = np.zeros(spec.num_cameras, dtype=int)
    images = []
    for visit_index in rng.permutation(len(visits)):
        for split, pid, camid, kind, identity in visits[visit_index]:
            frames[camid] += int(rng.integers(1, 30))
            file_name = f"{pid:04d}_c{camid + 1}s1_{frames[camid]:06d}_01.png"
            images.append(PlannedImage(split, pid, camid, file_name, kind, identity))
    return WorldPlan(spec, seed, cameras, tuple(identities), tuple(images))


# ---------------------------------------------------------------- rendering

class Painter:
    """Paints anti-aliased shapes on a float RGB canvas, in units of `size` pixels from the origin (cx, top).

    Shapes are signed-distance functions evaluated only inside their bounding box; a fill is a colour or a
    function of the (u, v) coordinates returning colours (a fabric pattern).
    """

    def __init__(self, canvas: np.ndarray, cx: float = 0.0, top: float = 0.0, size: float = 1.0):
        self.canvas, self.cx, self.top, self.size = canvas, cx, top, size

    def shape(self, bbox: tuple[float, float, float, float], sdf: Callable, fill) -> None:
        u0, v0, u1, v1 = bbox
        height, width = self.canvas.shape[:2]
        x0 = max(int(np.floor(self.cx + u0 * self.size)) - 1, 0)
        x1 = min(int(np.ceil(self.cx + u1 * self.size)) + 2, width)
        y0 = max(int(np.floor(self.top + v0 * self.size)) - 1, 0)
        y1 = min(int(np.ceil(self.top + v1 * self.size)) + 2, height)
        if x0 >= x1 or y0 >= y1:
            return
        u = ((np.arange(x0, x1, dtype=np.float32) + 0.5 - self.cx) / self.size)[None, :]
        v = ((np.arange(y0, y1, dtype=np.float32) + 0.5 - self.top) / self.size)[:, None]
        alpha = np.clip(0.5 - sdf(u, v) * self.size, 0.0, 1.0)[..., None]
        colour = fill(u, v) if callable(fill) else np.asarray(fill, dtype=np.float32)
        region = self.canvas[y0:y1, x0:x1]
        region += alpha * (colour - region)

    def ellipse(self, u: float, v: float, ru: float, rv: float, fill, clip: Callable | None = None) -> None:
        """Ellipse, optionally intersected with the region where clip(u, v) < 0."""
        def sdf(uu, vv):
            distance = (np.hypot((uu - u) / ru, (vv - v) / rv) - 1.0) * min(ru, rv)
            return distance if clip is None else np.maximum(distance, clip(uu, vv))
        self.shape((u - ru, v - rv, u + ru, v + rv), sdf, fill)

    def capsule(self, u0: float, v0: float, u1: float, v1: float, radius: float, fill) -> None:
        """A thick segment: limbs, straps, poles."""
        du, dv = u1 - u0, v1 - v0
        length2 = max(du * du + dv * dv, 1e-12)

        def sdf(uu, vv):
            t = np.clip(((uu - u0) * du + (vv - v0) * dv) / length2, 0.0, 1.0)
            return np.hypot(uu - u0 - t * du, vv - v0 - t * dv) - radius
        self.shape((min(u0, u1) - radius, min(v0, v1) - radius, max(u0, u1) + radius, max(v0, v1) + radius),
                   sdf, fill)

    def box(self, u: float, v0: float, v1: float, half_top: float, fill, half_bottom: float | None = None) -> None:
        """A box centred on u from v0 to v1, whose half-width goes linearly from half_top to half_bottom."""
        half_bottom = half_top if half_bottom is None else half_bottom

        def sdf(uu, vv):
            half = half_top + (half_bottom - half_top) * np.clip((vv - v0) / (v1 - v0), 0.0, 1.0)
            return np.maximum(np.abs(uu - u) - half, np.maximum(v0 - vv, vv - v1))
        widest = max(half_top, half_bottom)
        self.shape((u - widest, v0, u + widest, v1), sdf, fill)


def fabric(colour: Colour, accent: Colour, pattern: str, pose: str, period: float = 0.045):
    """A fill for clothes: solid, stripes, checks, or an open jacket that shows the accent shirt from the front."""
    main, second = np.asarray(colour, np.float32), np.asarray(accent, np.float32)
    if pattern == "solid" or (pattern == "jacket" and pose != "front"):
        return main

    def fill(u, v):
        """Colours at (u, v); a row- or column-only result broadcasts over the shape's window."""
        if pattern == "hstripes":
            mask = np.floor(v / period) % 2
        elif pattern == "vstripes":
            mask = np.floor(u / period) % 2
        elif pattern == "checks":
            mask = (np.floor(u / period) + np.floor(v / period)) % 2
        else:  # jacket, seen from the front
            mask = np.abs(u) < 0.028
        return np.where(mask[..., None] > 0.5, second, main)
    return fill


def shade(colour: Colour, factor: float) -> np.ndarray:
    return np.asarray(colour, np.float32) * factor


def paint_person(p: Painter, person: Identity, pose: str, stride: float, swing: float) -> None:
    """Paint a pedestrian in body units (0 = top of head, 1 = feet), back to front; the pose sets what is visible."""
    side = pose in ("left", "right")
    facing = 1.0 if pose == "right" else -1.0
    b = BODY_WIDTH * person.build
    shoulder, waist = (0.06 if side else 0.095) * b, (0.055 if side else 0.078) * b
    upper = fabric(person.upper, person.upper_accent, person.upper_pattern, pose)
    lower = fabric(person.lower, person.lower_accent, person.lower_pattern, pose)
    if person.hair_style == "long" and pose != "back":
        p.box(-facing * 0.02 if side else 0.0, 0.04, 0.24, 0.062, person.hair, half_bottom=0.07)
    if person.bag == "backpack" and side:
        p.box(-facing * (shoulder + 0.03), 0.18, 0.42, 0.04, person.bag_colour, half_bottom=0.045)
    if side:
        p.capsule(0, 0.175, -swing, 0.45, 0.024 * b, shade(person.upper, 0.75))  # far arm, in shadow
    _paint_legs(p, person, pose, stride, lower, waist)
    p.box(0, 0.15, 0.5, shoulder, upper, half_bottom=waist)
    if person.bag == "backpack" and pose == "back":
        p.box(0, 0.18, 0.42, 0.065 * b, person.bag_colour)
    _paint_arms(p, person, pose, swing, upper, shoulder)
    _paint_bag_front(p, person, pose, shoulder)
    if person.hair_style == "long" and pose == "back":
        p.box(0, 0.04, 0.25, 0.058, person.hair, half_bottom=0.068)
    _paint_head(p, person, pose, facing)


def _paint_legs(p: Painter, person: Identity, pose: str, stride: float, lower, waist: float) -> None:
    side, facing, b = pose in ("left", "right"), (1.0 if pose == "right" else -1.0), BODY_WIDTH * person.build
    radius = 0.036 * b
    if side:
        legs = [(0.0, -facing * stride, 0.8), (0.0, facing * stride, 1.0)]  # back leg first, in shadow
    else:
        hip = 0.042 * b
        legs = [(-hip, -hip - stride, 1.0), (hip, hip + stride, 1.0)]
    bare = person.lower_kind != "trousers"
    for hip_u, foot_u, light in legs:
        p.capsule(hip_u, 0.5, foot_u, 0.935, radius, shade(person.skin, light) if bare else
                  (lower if light == 1.0 else shade(person.lower, light)))
        if person.lower_kind == "shorts":
            p.capsule(hip_u, 0.5, hip_u + 0.4 * (foot_u - hip_u), 0.675, radius * 1.15,
                      lower if light == 1.0 else shade(person.lower, light))
        p.ellipse(foot_u + (facing * 0.015 if side else 0.0), 0.955, 0.045 if side else 0.034, 0.02,
                  shade(person.shoes, light))
    if person.lower_kind == "skirt":
        p.box(0, 0.45, 0.7, waist, lower, half_bottom=waist * 1.7)
    else:
        p.box(0, 0.45, 0.56, waist, lower, half_bottom=waist * 1.05)


def _paint_arms(p: Painter, person: Identity, pose: str, swing: float, upper, shoulder: float) -> None:
    b = BODY_WIDTH * person.build
    if pose in ("left", "right"):
        arms = [(0.0, 0.175, swing, 0.45)]
    else:
        arms = [(s * (shoulder - 0.015), 0.175, s * (shoulder + 0.012), 0.45) for s in (-1.0, 1.0)]
    for u0, v0, u1, v1 in arms:
        if person.sleeves == "long":
            p.capsule(u0, v0, u1, v1, 0.024 * b, upper)
        else:
            p.capsule(u0, v0, u1, v1, 0.021 * b, person.skin)
            p.capsule(u0, v0, u0 + 0.4 * (u1 - u0), v0 + 0.4 * (v1 - v0), 0.026 * b, upper)
        p.ellipse(u1, v1 + 0.01, 0.02 * b, 0.022, person.skin)


def _paint_bag_front(p: Painter, person: Identity, pose: str, shoulder: float) -> None:
    """Straps and bags in front of the torso: backpack straps (front), shoulder bag with its diagonal strap."""
    b = BODY_WIDTH * person.build
    if person.bag == "backpack" and pose == "front":
        for s in (-1.0, 1.0):
            p.capsule(s * 0.05 * b, 0.16, s * 0.055 * b, 0.36, 0.009, person.bag_colour)
    elif person.bag == "shoulder":
        if pose in ("left", "right"):
            p.capsule(0, 0.16, 0, 0.44, 0.007, person.bag_colour)
            p.box(0, 0.43, 0.54, 0.05, person.bag_colour)
        else:
            mirror = 1.0 if pose == "front" else -1.0
            p.capsule(mirror * shoulder * 0.7, 0.16, -mirror * (shoulder + 0.02), 0.45, 0.008, person.bag_colour)
            p.box(-mirror * (shoulder + 0.03), 0.43, 0.53, 0.042, person.bag_colour)


def _paint_head(p: Painter, person: Identity, pose: str, facing: float) -> None:
    side = pose in ("left", "right")
    p.box(0, 0.12, 0.17, 0.024, person.skin)
    head_u, head_v, head_ru, head_rv = 0.0, 0.075, (0.056 if side else 0.05), 0.062
    p.ellipse(head_u, head_v, head_ru, head_rv, person.skin if pose != "back" else person.hair)
    if person.hair_style == "hat":
        p.ellipse(0, 0.045, 0.057, 0.04, person.hat, clip=lambda u, v: v - 0.05)
        brim_u = facing * 0.028 if side else 0.0
        p.box(brim_u, 0.045, 0.056, 0.075 if side else 0.064, shade(person.hat, 0.8))
    elif pose == "front":
        p.ellipse(head_u, head_v, head_ru, head_rv, person.hair, clip=lambda u, v: v - 0.045)
    elif side:
        p.ellipse(head_u, head_v, head_ru, head_rv, person.hair,
                  clip=lambda u, v: np.minimum(v - 0.045, facing * u + 0.008))


def paint_backdrop(style: CameraStyle, height: int, width: int) -> np.ndarray:
    """A camera's background, larger than one image so each image shows a shifted crop of it."""
    rng = np.random.default_rng(style.texture_seed)
    rows, cols = height + height // 4, 2 * width
    y = ((np.arange(rows) + 0.5) / height)[:, None]
    x = ((np.arange(cols) + 0.5) / height)[None, :]
    period = style.texture_period
    if style.texture == "bricks":
        row = np.floor(y / period)
        mask = ((y % period) < 0.15 * period) | (((x + 0.5 * period * (row % 2)) % (2 * period)) < 0.15 * period)
    elif style.texture == "stripes":
        mask = np.floor(x / period) % 2 == 0
    elif style.texture == "windows":
        mask = ((x % (2.2 * period)) < 1.2 * period) & ((y % (3 * period)) < 1.8 * period)
    elif style.texture == "foliage":
        coarse = rng.random((rows // 5 + 2, cols // 5 + 2)).astype(np.float32)
        mask = np.asarray(Image.fromarray(coarse).resize((cols, rows), Image.BILINEAR))
    else:  # gradient
        mask = np.clip(y / 1.25, 0, 1)
    wall_colour, accent_colour = np.asarray(style.wall, np.float32), np.asarray(style.accent, np.float32)
    wall = wall_colour + np.asarray(mask, np.float32)[..., None] * (accent_colour - wall_colour)
    floor = np.asarray(style.floor, np.float32) * np.clip(0.75 + 0.3 * (y - style.horizon), 0.6, 1.2)[..., None]
    backdrop = np.where((y > style.horizon)[..., None], floor, wall)
    return np.broadcast_to(backdrop, (rows, cols, 3)).astype(np.float32)  # row-only patterns need the broadcast


def _random_colour(rng: np.random.Generator) -> Colour:
    return _hsv(rng.random(), rng.uniform(0.0, 0.7), rng.uniform(0.15, 0.9))


def paint_clutter(p: Painter, rng: np.random.Generator, height: int, width: int, count: int) -> None:
    """Objects of the scene behind the person (pixel units): poles, signs, blobs."""
    for _ in range(count):
        kind, colour = rng.integers(3), _random_colour(rng)
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if kind == 0:
            p.box(x, rng.uniform(0, 0.5 * height), height, rng.uniform(0.5, 2.0), colour)
        elif kind == 1:
            p.box(x, y, y + rng.uniform(0.05, 0.15) * height, rng.uniform(0.1, 0.25) * width, colour)
        else:
            p.ellipse(x, y, rng.uniform(0.1, 0.3) * width, rng.uniform(0.05, 0.15) * height, colour)


def paint_occluder(p: Painter, rng: np.random.Generator, height: int, width: int) -> None:
    """Something between camera and person: from below (bench, car) or from a side (pole, another passer-by)."""
    colour = _random_colour(rng)
    if rng.random() < 0.5:
        top = height * (1 - rng.uniform(0.12, 0.3))
        p.box(width / 2, top, height + 1, width, colour)
    else:
        half = rng.uniform(0.08, 0.15) * width
        centre = half - 1 if rng.random() < 0.5 else width - half + 1
        p.box(centre, -1, height + 1, half, colour)


def apply_camera(canvas: np.ndarray, style: CameraStyle, rng: np.random.Generator) -> np.ndarray:
    """The camera's optics (resolution loss, blur) then its colour response and sensor noise; returns uint8."""
    height, width = canvas.shape[:2]
    image = Image.fromarray(_to_uint8(canvas))
    if style.downscale > 1.01:
        small = (max(round(width / style.downscale), 4), max(round(height / style.downscale), 8))
        image = image.resize(small, Image.BILINEAR).resize((width, height), Image.BILINEAR)
    radius = style.blur * height / REFERENCE_HEIGHT
    if radius > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    x = np.asarray(image, dtype=np.float32) / 255.0
    x = x ** style.gamma * np.asarray(style.gains, np.float32)
    x = (x - 0.5) * style.contrast + 0.5 + style.brightness
    x += rng.normal(0.0, style.noise, x.shape).astype(np.float32)
    return _to_uint8(x)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class WorldRenderer:
    """Renders a plan's images one by one; image i draws its randomness from its own stream only."""

    def __init__(self, plan: WorldPlan):
        self.plan = plan
        spec = plan.spec
        self.backdrops = [paint_backdrop(style, spec.height, spec.width) for style in plan.cameras]

    def render(self, index: int) -> np.ndarray:
        spec, image = self.plan.spec, self.plan.images[index]
        style = self.plan.cameras[image.camid]
        rng = np.random.default_rng([IMAGE_STREAM, spec.style_seed, self.plan.seed, index])
        height, width = spec.height, spec.width
        backdrop = self.backdrops[image.camid]
        dy, dx = rng.integers(backdrop.shape[0] - height + 1), rng.integers(backdrop.shape[1] - width + 1)
        canvas = backdrop[dy:dy + height, dx:dx + width].copy()
        pixels = Painter(canvas)
        paint_clutter(pixels, rng, height, width, int(rng.poisson(1.5)))
        if image.kind != "background":
            self._paint_pedestrian(canvas, image, style, rng)
        if image.kind == "background" or rng.random() < spec.occlusion_rate:
            paint_occluder(pixels, rng, height, width)
        return apply_camera(canvas, style, rng)

    def _paint_pedestrian(self, canvas, image: PlannedImage, style: CameraStyle, rng: np.random.Generator) -> None:
        """Pose from the camera's viewpoint bias (flipped for people walking the other way); scale and jitter."""
        height, width = canvas.shape[:2]
        person = self.plan.identities[image.identity]
        pose = POSES[rng.choice(4, p=style.pose_probs)]
        if person.direction < 0:
            pose = REVERSED_POSE[pose]
        size = height * person.stature * float(np.clip(style.person_scale + rng.normal(0, 0.03), 0.7, 0.98))
        cx = width / 2 + rng.normal(0, 0.06 * width)
        top = (height - size) / 2 + rng.normal(0, 0.03 * height)
        if image.kind == "partial":  # a passer-by cut by the crop: too big, or half out of the frame
            if rng.random() < 0.5:
                size *= rng.uniform(1.5, 2.2)
                top = rng.choice([0.0, height - size]) + rng.normal(0, 0.05 * height)
            else:
                cx += rng.choice([-1, 1]) * rng.uniform(0.4, 0.6) * width
        side = pose in ("left", "right")
        stride = rng.uniform(0.0, 0.1) if side else rng.uniform(0.0, 0.035)
        swing = rng.uniform(-0.08, 0.08)
        paint_person(Painter(canvas, cx, top, size), person, pose, stride, swing)


# ---------------------------------------------------------------- writing, reuse, statistics

class OtherWorldError(ValueError):
    """The folder holds a world generated from another spec, seed or renderer version."""


def _manifest(spec: WorldSpec, seed: int, plan: WorldPlan | None = None) -> dict:
    manifest = {"generator": __name__, "render_version": RENDER_VERSION, "seed": seed, "spec": asdict(spec)}
    if plan is not None:
        manifest["files"] = {folder: sum(image.split == split for image in plan.images)
                             for split, folder in MARKET_FOLDERS.items()}
    return json.loads(json.dumps(manifest))  # tuples -> lists, as read back from disk


def _read_manifest(root: Path) -> dict | None:
    path = root / MANIFEST_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def _same_world(existing: dict, wanted: dict) -> bool:
    keys = ("generator", "render_version", "seed", "spec")
    return all(existing.get(key) == wanted[key] for key in keys)


def _check_complete(root: Path, manifest: dict) -> None:
    """A reused folder must still hold every image its manifest lists."""
    for folder, expected in manifest["files"].items():
        found = len(list((root / folder).glob("*.png"))) if (root / folder).is_dir() else 0
        if found != expected:
            raise ValueError(f"{root / folder} holds {found} images, its {MANIFEST_NAME} says {expected}: "
                             f"the world is incomplete; regenerate it with overwrite=True")


def write_world(plan: WorldPlan, folder: Path) -> None:
    """Render every planned image into folder in Market-1501 layout, then write the manifest."""
    for subfolder in MARKET_FOLDERS.values():
        (folder / subfolder).mkdir(parents=True)
    renderer = WorldRenderer(plan)
    for index, image in enumerate(tqdm(plan.images, desc=f"rendering {plan.spec.name}", unit="img")):
        path = folder / MARKET_FOLDERS[image.split] / image.file_name
        Image.fromarray(renderer.render(index)).save(path, format="PNG")
    text = json.dumps(_manifest(plan.spec, plan.seed, plan), indent=2, sort_keys=True) + "\n"
    (folder / MANIFEST_NAME).write_text(text)


def _read_world(root: Path, spec: WorldSpec, manifest: dict) -> ReidDataset:
    dataset = read_market1501(root, name=spec.name)
    dataset.extra["world"] = manifest
    return dataset


def generate_world(spec: WorldSpec, root: str | os.PathLike, seed: int = 0, overwrite: bool = False) -> ReidDataset:
    """Write the world (spec, seed) to root in Market-1501 layout and return it read back through read_market1501.

    A folder already holding this world (its world.json names the same spec, seed and renderer version) is reused.
    A folder holding another world is an error unless overwrite=True; a non-empty folder without world.json is
    never written into. Rendering goes to a temporary sibling folder renamed into place at the end, so an
    interrupted run leaves nothing half-written at root.
    """
    root = Path(root).expanduser().absolute()
    wanted = _manifest(spec, seed)
    existing = _read_manifest(root)
    if existing is not None and _same_world(existing, wanted) and not overwrite:
        _check_complete(root, existing)
        return _read_world(root, spec, existing)
    if existing is not None and not overwrite:
        raise OtherWorldError(f"{root} holds another world (seed {existing.get('seed')}, spec {existing.get('spec')}); "
                         f"pass overwrite=True to replace it, or choose another folder")
    if existing is None and root.is_dir() and any(root.iterdir()):
        raise ValueError(f"{root} is not empty and holds no {MANIFEST_NAME}: refusing to write a world into it")
    plan = plan_world(spec, seed)
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".partial", dir=root.parent))
    try:
        write_world(plan, partial)
        if root.exists():
            shutil.rmtree(root)
        os.rename(partial, root)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return _read_world(root, spec, _read_manifest(root))


def world_statistics(dataset: ReidDataset) -> pd.DataFrame:
    """Per split (and test = query + gallery): counts, cameras per id, images per camera, id-camera MI.

    id_camera_mi is the mutual information (nats, sklearn.metrics.mutual_info_score) between true identity and
    camera over the split's non-distractor images: the train row is the dashed reference of the paper's Fig. 3.
    """
    splits = {"train": dataset.train, "query": dataset.query, "gallery": dataset.gallery,
              "test": dataset.query + dataset.gallery}
    rows = {}
    for split, records in splits.items():
        people = [r for r in records if r.pid > 0]
        pids = np.array([r.pid for r in people])
        camids = np.array([r.camid for r in people])
        cameras_per_id = [len(set(camids[pids == pid])) for pid in np.unique(pids)]
        row = {
            "images": len(records),
            "ids": len(cameras_per_id),
            "distractors": len(records) - len(people),
            "cameras": len({r.camid for r in records}),
            "images_per_id": len(people) / max(len(cameras_per_id), 1),
            "cameras_per_id": float(np.mean(cameras_per_id)) if cameras_per_id else 0.0,
            "id_camera_mi": float(mutual_info_score(pids, camids)) if len(people) else 0.0,
        }
        for camid in range(dataset.num_cams):
            row[f"c{camid + 1}"] = sum(r.camid == camid for r in records)
        rows[split] = row
    return pd.DataFrame.from_dict(rows, orient="index")
