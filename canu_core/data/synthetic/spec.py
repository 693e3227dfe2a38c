"""What a synthetic world is: every knob (`WorldSpec`, checked on construction), the presets, and the constants
the plan and the renderer share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CAMERA_LAYOUTS = ("line", "ring")
POSES = ("front", "back", "left", "right")
REVERSED_POSE = {"front": "back", "back": "front", "left": "right", "right": "left"}
TEXTURES = ("bricks", "stripes", "windows", "foliage", "gradient")
BODY_WIDTH = 1.3  # widens every body part: detection crops are tight, people fill about half their width
REFERENCE_HEIGHT = 128  # blur radii are given for this image height and scaled with it
# Independent random streams, so that e.g. changing the number of ids does not change the camera styles, and a world
# with area_fashion 0 and visit_skew 0 is the one generated before those knobs existed, byte for byte.
STYLE_STREAM, PLAN_STREAM, IMAGE_STREAM, FASHION_STREAM, VISIT_STREAM = 1, 2, 3, 4, 5


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
    area_fashion: float = 0.0
    """lambda in [0, 1]: how much of a person's look comes from where they walk, the paper's condition (camera
    information that is also identity information). Each camera has its own fashion, a Dirichlet-drawn prior over
    clothing colours, patterns, sleeves, lower kind, hair colour and style and bag; a person draws each attribute
    from (1 - lambda) x the world's prior + lambda x the mean prior of the cameras on their route. 0: looks are
    independent of the route, so a camera is only a style painted on top."""
    visit_skew: float = 0.0
    """beta >= 0: how a person's images spread over the cameras of their route. 0: each camera independently
    images_per_camera (even on average). > 0: the same total spread with Dirichlet(beta) weights, each camera keeping
    images_per_camera's minimum: a small beta gives each person a 'home' camera holding most of their images."""

    def __post_init__(self):
        object.__setattr__(self, "images_per_camera", tuple(self.images_per_camera))
        problems = self._problems()
        if problems:
            raise ValueError("invalid WorldSpec: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        def is_int(value) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        checks = [
            (
                is_int(self.num_cameras) and 2 <= self.num_cameras <= 99,
                f"num_cameras must be an int in [2, 99], got {self.num_cameras!r}",
            ),
            (
                self.camera_layout in CAMERA_LAYOUTS,
                f"camera_layout must be one of {CAMERA_LAYOUTS}, got {self.camera_layout!r}",
            ),
            (0.0 <= self.camera_coverage <= 1.0, f"camera_coverage must be in [0, 1], got {self.camera_coverage!r}"),
            (
                is_int(self.num_train_ids) and self.num_train_ids >= 1,
                f"num_train_ids must be an int >= 1, got {self.num_train_ids!r}",
            ),
            (
                is_int(self.num_test_ids) and self.num_test_ids >= 1,
                f"num_test_ids must be an int >= 1, got {self.num_test_ids!r}",
            ),
            (
                not (is_int(self.num_train_ids) and is_int(self.num_test_ids))
                or self.num_train_ids + self.num_test_ids <= 9999,
                "num_train_ids + num_test_ids must be <= 9999 (pids have 4 digits in Market naming)",
            ),
            (
                len(self.images_per_camera) == 2
                and all(map(is_int, self.images_per_camera))
                and 2 <= self.images_per_camera[0] <= self.images_per_camera[1],
                f"images_per_camera must be (min, max) ints with 2 <= min <= max, got {self.images_per_camera!r}",
            ),
            (
                is_int(self.num_distractors) and self.num_distractors >= 0,
                f"num_distractors must be an int >= 0, got {self.num_distractors!r}",
            ),
            (is_int(self.height) and self.height >= 32, f"height must be an int >= 32, got {self.height!r}"),
            (is_int(self.width) and self.width >= 16, f"width must be an int >= 16, got {self.width!r}"),
            (is_int(self.style_seed), f"style_seed must be an int, got {self.style_seed!r}"),
            (0.0 <= self.style_strength <= 2.0, f"style_strength must be in [0, 2], got {self.style_strength!r}"),
            (0.0 <= self.occlusion_rate <= 1.0, f"occlusion_rate must be in [0, 1], got {self.occlusion_rate!r}"),
            (0.0 <= self.area_fashion <= 1.0, f"area_fashion must be in [0, 1], got {self.area_fashion!r}"),
            (
                0.0 <= self.visit_skew < float("inf"),
                f"visit_skew must be a finite number >= 0, got {self.visit_skew!r}",
            ),
        ]
        return [message for ok, message in checks if not ok]


PRESETS: dict[str, WorldSpec] = {
    # Market-like: 6 cameras along a corridor. style_strength 0.5: calibrated so that the compact network's source
    # pretraining (notebook 01 defaults) reaches a high source mAP while direct transfer stays far lower; at 1.0
    # it learned too slowly for a CPU budget (source mAP ~30% after 12 epochs, target ~1%).
    "source": WorldSpec(
        name="synthetic_source",
        num_cameras=6,
        camera_layout="line",
        camera_coverage=0.25,
        style_seed=1,
        style_strength=0.5,
    ),
    # Duke-like: 8 cameras on a campus loop, another palette and other camera styles. style_strength 0.4:
    # calibrated for adaptation (docs/results.md "Calibrating the target", benchmarks/calibrate_target.py): at 0.5 the
    # source models' target features were so camera-bound (pseudo-label pair precision 0.12) that MMT lost mAP
    # from its first epoch; at 0.3 the pseudo-labels carried barely more camera information than the true ids
    # (MI 0.92 vs 0.86 nats); at 0.4 they carry 1.25 nats, with direct transfer at 22.2% mAP.
    "target": WorldSpec(
        name="synthetic_target",
        num_cameras=8,
        camera_layout="ring",
        camera_coverage=0.2,
        style_seed=2,
        style_strength=0.4,
    ),
    # For tests: about 100 images, generated in about a second.
    "tiny": WorldSpec(
        name="synthetic_tiny",
        num_cameras=3,
        camera_coverage=0.5,
        num_train_ids=6,
        num_test_ids=6,
        images_per_camera=(2, 4),
        num_distractors=10,
        height=64,
        width=32,
        style_seed=3,
    ),
    # The tiny world's target: other cameras, styles and people (smoke runs adapt tiny -> tiny_target).
    "tiny_target": WorldSpec(
        name="synthetic_tiny_target",
        num_cameras=4,
        camera_layout="ring",
        camera_coverage=0.5,
        num_train_ids=6,
        num_test_ids=6,
        images_per_camera=(2, 4),
        num_distractors=10,
        height=64,
        width=32,
        style_seed=4,
    ),
}
