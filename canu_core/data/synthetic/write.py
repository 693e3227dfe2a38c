"""Writing a world in Market-1501 layout (atomically, with its manifest), reusing a folder that holds the same
world, and its statistics."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.metrics import mutual_info_score
from tqdm.auto import tqdm

from ..datasets import MARKET_FOLDERS, read_market1501
from ..records import ReidDataset
from .plan import WorldPlan, plan_world
from .readout import world_readout
from .render import WorldRenderer
from .spec import WorldSpec

RENDER_VERSION = 1  # bump when the renderer changes, so old world folders are not silently reused
MANIFEST_NAME = "world.json"
# The manifest's generator: the module that wrote the worlds before it became a package (a changed name would make
# every world on disk look like another world).
GENERATOR = "canu_core.data.synthetic"


class OtherWorldError(ValueError):
    """The folder holds a world generated from another spec, seed or renderer version."""


def _manifest(spec: WorldSpec, seed: int, plan: WorldPlan | None = None) -> dict:
    manifest = {"generator": GENERATOR, "render_version": RENDER_VERSION, "seed": seed, "spec": asdict(spec)}
    if plan is not None:
        manifest["files"] = {
            folder: sum(image.split == split for image in plan.images) for split, folder in MARKET_FOLDERS.items()
        }
    return json.loads(json.dumps(manifest))  # tuples -> lists, as read back from disk


class DamagedManifestError(ValueError):
    """A world.json that is not a manifest (cut off, emptied, edited)."""


MANIFEST_KEYS = ("generator", "render_version", "seed", "spec", "files")


def _read_manifest(root: Path) -> dict | None:
    """The folder's manifest, None when it has none; DamagedManifestError naming the file when it is not one."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DamagedManifestError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or any(key not in manifest for key in MANIFEST_KEYS):
        raise DamagedManifestError(f"{path} is not a world manifest (expected the keys {', '.join(MANIFEST_KEYS)})")
    return manifest


def _same_world(existing: dict, wanted: dict) -> bool:
    """The same generator, renderer, seed and spec; a knob the manifest predates counts as its default (the
    default reproduces the world made before the knob existed)."""
    spec = {**asdict(WorldSpec()), **existing["spec"]}
    keys = ("generator", "render_version", "seed")
    return all(existing.get(key) == wanted[key] for key in keys) and spec == wanted["spec"]


def _missing_images(root: Path, manifest: dict) -> str | None:
    """What a reused folder lacks of the images its manifest lists (None: nothing)."""
    for folder, expected in manifest["files"].items():
        found = len(list((root / folder).glob("*.png"))) if (root / folder).is_dir() else 0
        if found != expected:
            return f"{root / folder} holds {found} images, its {MANIFEST_NAME} says {expected}"
    return None


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

    A folder already holding this world (its world.json names the same spec, seed and renderer version) is reused;
    one whose world.json is damaged, or that lacks images it lists, is derived data and generated again, with a
    warning. A folder holding another world is an error unless overwrite=True; a non-empty folder without
    world.json is never written into. Rendering goes to a temporary sibling folder renamed into place at the end, so an
    interrupted run leaves nothing half-written at root. Processes asking for one world at once (a study's parallel
    runs on a new target) take turns on a lock file beside root: the first writes the world, the others read it.
    """
    root = Path(root).expanduser().absolute()
    root.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(root.parent / f".{root.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _generate_world(spec, root, seed, overwrite)
    finally:
        os.close(lock)  # releases the lock


def _generate_world(spec: WorldSpec, root: Path, seed: int, overwrite: bool) -> ReidDataset:
    wanted = _manifest(spec, seed)
    generated_here = False  # a folder this generator wrote, damaged since: derived data, made again
    try:
        existing = _read_manifest(root)
    except DamagedManifestError as err:
        warnings.warn(f"{err}: generating the world again in its place", stacklevel=3)
        existing, generated_here = None, True
    if existing is not None and _same_world(existing, wanted) and not overwrite:
        missing = _missing_images(root, existing)
        if missing is None:
            return _read_world(root, spec, existing)
        warnings.warn(f"{missing}: the world is incomplete; generating it again in its place", stacklevel=3)
        existing, generated_here = None, True
    if existing is not None and not overwrite:
        raise OtherWorldError(
            f"{root} holds another world (seed {existing.get('seed')}, spec {existing.get('spec')}); "
            f"pass overwrite=True to replace it, or choose another folder"
        )
    if existing is None and not generated_here and root.is_dir() and any(root.iterdir()):
        raise ValueError(f"{root} is not empty and holds no {MANIFEST_NAME}: refusing to write a world into it")
    plan = plan_world(spec, seed)
    print(f"{spec.name} (seed {seed}): what the camera tells of a person's looks (docs/guide.md 'The synthetic world')")
    print(world_readout(plan).round(3).to_string())
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
    splits = {
        "train": dataset.train,
        "query": dataset.query,
        "gallery": dataset.gallery,
        "test": dataset.query + dataset.gallery,
    }
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
        for camid in range(dataset.num_cameras):
            row[f"c{camid + 1}"] = sum(r.camid == camid for r in records)
        rows[split] = row
    return pd.DataFrame.from_dict(rows, orient="index")
