"""Rendering a planned image: a person painted over a camera's backdrop, through the camera's style."""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from .plan import CameraStyle, Colour, Identity, PlannedImage, WorldPlan, _hsv
from .spec import BODY_WIDTH, IMAGE_STREAM, POSES, REFERENCE_HEIGHT, REVERSED_POSE


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

        self.shape((min(u0, u1) - radius, min(v0, v1) - radius, max(u0, u1) + radius, max(v0, v1) + radius), sdf, fill)

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
        p.capsule(
            hip_u,
            0.5,
            foot_u,
            0.935,
            radius,
            shade(person.skin, light) if bare else (lower if light == 1.0 else shade(person.lower, light)),
        )
        if person.lower_kind == "shorts":
            p.capsule(
                hip_u,
                0.5,
                hip_u + 0.4 * (foot_u - hip_u),
                0.675,
                radius * 1.15,
                lower if light == 1.0 else shade(person.lower, light),
            )
        p.ellipse(
            foot_u + (facing * 0.015 if side else 0.0),
            0.955,
            0.045 if side else 0.034,
            0.02,
            shade(person.shoes, light),
        )
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
        p.ellipse(
            head_u, head_v, head_ru, head_rv, person.hair, clip=lambda u, v: np.minimum(v - 0.045, facing * u + 0.008)
        )


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
    x = x**style.gamma * np.asarray(style.gains, np.float32)
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
        canvas = backdrop[dy : dy + height, dx : dx + width].copy()
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
