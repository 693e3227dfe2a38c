"""What a world lets the camera say about who a person is, read off its plan before a pixel is drawn: the paper's
condition (camera information that is also identity information) measured, not assumed.

Per split (train; test = query + gallery), over the person images: the adjusted MI between each visible attribute of
the person and the camera (nats, the plug-in MI less its expectation for attributes that ignore the camera: about 0
when looks do not depend on the route), and the best camera accuracy reachable from the true identity alone (each
person's most frequent camera): the level a camera probe reaches if the features hold the identity and nothing of
the camera's style.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ...cluster.diagnostics import camera_adjusted_mutual_information, identity_alone_accuracy
from ..records import ImageRecord, ReidDataset
from .plan import WorldPlan, plan_world
from .spec import WorldSpec

# The readout's attributes: its column name -> the Identity field.
READOUT_ATTRIBUTES = {
    "upper colour": "upper",
    "lower colour": "lower",
    "upper pattern": "upper_pattern",
    "lower kind": "lower_kind",
    "hair colour": "hair",
    "hair style": "hair_style",
    "bag": "bag",
}
SPLITS = {"train": ("train",), "test": ("query", "gallery")}


def world_readout(plan: WorldPlan) -> pd.DataFrame:
    """One row per split: images, the identity-alone camera accuracy, and adjusted MI(attribute; camera) per
    attribute (docs/guide.md "The synthetic world")."""
    rows = {}
    for split, folders in SPLITS.items():
        people = [image for image in plan.images if image.split in folders and image.kind == "person"]
        pids = np.array([image.pid for image in people])
        camids = np.array([image.camid for image in people])
        row = {"images": len(people), "identity-alone camera accuracy": identity_alone_accuracy(pids, camids)}
        for name, field in READOUT_ATTRIBUTES.items():
            values = [repr(getattr(plan.identities[image.identity], field)) for image in people]
            row[f"adjusted MI({name}; camera)"] = camera_adjusted_mutual_information(
                pd.factorize(pd.Series(values))[0], camids
            )
        rows[split] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def dataset_plan(dataset: ReidDataset) -> WorldPlan:
    """The plan of a generated synthetic world, re-planned from its manifest's spec and seed (planning is cheap and
    exact: the same spec and seed give the same plan)."""
    manifest = dataset.extra.get("world")
    if manifest is None:
        raise ValueError(f"{dataset.name} is not a synthetic world: it has no plan to read")
    spec = WorldSpec(**{**manifest["spec"], "images_per_camera": tuple(manifest["spec"]["images_per_camera"])})
    return plan_world(spec, manifest["seed"])


def record_attribute(dataset: ReidDataset, records: Sequence[ImageRecord], attribute: str) -> np.ndarray:
    """The readout attribute `attribute` (a READOUT_ATTRIBUTES name, e.g. "upper colour") of the person in each
    of `records` (images of `dataset`'s people), as integer codes in the records' order."""
    if attribute not in READOUT_ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}: expected one of {', '.join(READOUT_ATTRIBUTES)}")
    plan = dataset_plan(dataset)
    by_file = {image.file_name: image for image in plan.images if image.kind == "person"}
    missing = [r.path for r in records if Path(r.path).name not in by_file]
    if missing:
        raise ValueError(f"{len(missing)} records are not person images of {dataset.name}'s plan, e.g. {missing[0]}")
    field = READOUT_ATTRIBUTES[attribute]
    values = [repr(getattr(plan.identities[by_file[Path(r.path).name].identity], field)) for r in records]
    return pd.factorize(pd.Series(values))[0]


def dataset_readout(dataset: ReidDataset) -> pd.DataFrame:
    """`world_readout` of a generated synthetic world (`dataset_plan`)."""
    return world_readout(dataset_plan(dataset))
