"""Synthetic multi-camera re-ID worlds: the lab's embedded default datasets.

Real re-ID datasets cannot be downloaded here, so the lab renders its own, keeping the two properties CANU-ReID is
about (paper, section IV):
- every camera has a strong style of its own (colour cast, contrast, blur, background, viewpoint), so untrained
  features group images by camera rather than by person;
- people walk through a few *adjacent* cameras only, so identity and camera are correlated: the condition under
  which a plain camera adversary causes negative transfer (`WorldSpec.camera_coverage` sets how strongly);
- with `WorldSpec.area_fashion`, people also dress after the cameras they walk through, so that what the camera
  tells is partly who the person is, not only how the camera paints (`readout.world_readout` measures it).

A world is first planned (people, the cameras each walks through, which image goes to which split: pure data), then
rendered image by image, each from its own random stream, and written in Market-1501 layout and naming.
`WorldSpec.style_seed` draws the cameras and the clothing palette (a world's domain); `seed` draws the people and
their images. The same spec and seed always give the same bytes.
"""

from .plan import plan_world
from .readout import dataset_readout, world_readout
from .spec import PRESETS, WorldSpec
from .write import OtherWorldError, generate_world, world_statistics

__all__ = [
    "PRESETS",
    "OtherWorldError",
    "WorldSpec",
    "dataset_readout",
    "generate_world",
    "plan_world",
    "world_readout",
    "world_statistics",
]
