"""The paper's condition built into the synthetic worlds: `area_fashion` (people dress after the cameras they walk
through) and `visit_skew` (a 'home' camera), their readout, and worlds without them unchanged to the byte."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from canu_core.cluster import identity_alone_accuracy
from canu_core.config import make_params
from canu_core.data.catalog import dataset_root, load_dataset, target_world
from canu_core.data.synthetic import PRESETS, WorldSpec, dataset_readout, plan_world, world_readout

# sha256 of repr((cameras, identities, images)) of each preset's plan at seed 0, computed before area_fashion and
# visit_skew existed: at their defaults (0) every world is the one made before, so no world on disk changes.
PLANS_BEFORE_THE_KNOBS = {
    "tiny": "5be3052c607b3564e3d71d59dcb9c54783d2357f62e79bd5120f5789f7d3598f",
    "tiny_target": "5d61754f0513f530d7542db82f4ae4241f62470419799e6a2b04e1326aec649d",
    "target": "fec61c9b3a81393c59e23cf0096d2143e94890405d66cbe30d4403f5a45c823c",
    "source": "6b91fac19dadf85906d24167d740e63e40ff1a8a268729f49c8a1b36ef03ec9b",
}
COLOURS = ["adjusted MI(upper colour; camera)", "adjusted MI(lower colour; camera)"]


def plan_digest(spec: WorldSpec) -> str:
    plan = plan_world(spec, 0)
    return hashlib.sha256(repr((plan.cameras, plan.identities, plan.images)).encode()).hexdigest()


@pytest.mark.parametrize("preset", sorted(PLANS_BEFORE_THE_KNOBS))
def test_worlds_at_lambda_0_and_beta_0_are_the_worlds_made_before(preset):
    assert PRESETS[preset].area_fashion == 0 and PRESETS[preset].visit_skew == 0
    assert plan_digest(PRESETS[preset]) == PLANS_BEFORE_THE_KNOBS[preset]


def test_the_camera_tells_more_of_a_persons_looks_as_lambda_grows():
    readouts = [
        world_readout(plan_world(dataclasses.replace(PRESETS["target"], area_fashion=lam), 0)) for lam in (0, 0.5, 1)
    ]
    for split in ("train", "test"):
        colours = [readout.loc[split, COLOURS].mean() for readout in readouts]
        assert colours[0] < colours[1] < colours[2], colours
        assert abs(colours[0]) < 0.03 and colours[2] > 0.08  # about nothing without the knob, 0.1 nats at 1
    # the people, their routes and their images are the same: only what they wear follows the route
    plain, dressed = (plan_world(dataclasses.replace(PRESETS["target"], area_fashion=lam), 0) for lam in (0, 1))
    assert plain.images == dressed.images and [p.route for p in plain.identities] == [
        p.route for p in dressed.identities
    ]
    assert [p.upper for p in plain.identities] != [p.upper for p in dressed.identities]


def test_a_small_visit_skew_gives_each_person_a_home_camera():
    low, high = PRESETS["target"].images_per_camera
    accuracies = []
    for beta in (0.0, 1.0, 0.1):
        plan = plan_world(dataclasses.replace(PRESETS["target"], visit_skew=beta), 0)
        people = [image for image in plan.images if image.split == "train"]
        pids, camids = np.array([i.pid for i in people]), np.array([i.camid for i in people])
        accuracies.append(identity_alone_accuracy(pids, camids))
        for pid in np.unique(pids):  # every camera of the route keeps its minimum: each query keeps a match
            route = plan.identities[pid - 1].route
            counts = [(camids[pids == pid] == camera).sum() for camera in route]
            assert min(counts) >= low and sum(counts) <= high * len(route)
    assert accuracies[0] < accuracies[1] < accuracies[2], accuracies


def test_identity_alone_accuracy_counts_each_persons_most_frequent_camera():
    pids = np.array([1, 1, 1, 2, 2, 3])
    camids = np.array([0, 0, 1, 2, 3, 1])
    assert identity_alone_accuracy(pids, camids) == pytest.approx((2 + 1 + 1) / 6)


def test_the_knobs_are_parameters_folders_and_manifest_entries(tmp_path):
    params = make_params({"target": "synthetic:tiny_target", "target_area_fashion": 1.0, "target_visit_skew": 0.5})
    assert target_world(params) == {"area_fashion": 1.0, "visit_skew": 0.5}
    world = load_dataset(params.target, tmp_path, 0, target_world(params))
    root = dataset_root(params.target, tmp_path, 0, target_world(params))
    assert root.name == "synthetic_tiny_target_seed0_fashion1.0_skew0.5"
    spec = json.loads((root / "world.json").read_text())["spec"]
    assert (spec["area_fashion"], spec["visit_skew"]) == (1.0, 0.5)
    readout = dataset_readout(world)
    assert list(readout.index) == ["train", "test"] and readout.loc["train", "images"] == len(world.train)
    with pytest.raises(ValueError, match="visit_skew must be a finite number >= 0, got -1"):
        WorldSpec(visit_skew=-1)
    with pytest.raises(ValueError, match=r"area_fashion must be in \[0, 1\], got 1.5"):
        WorldSpec(area_fashion=1.5)


def test_a_world_made_before_the_knobs_is_reused_not_regenerated(tmp_path, capsys):
    world = load_dataset("synthetic:tiny", tmp_path)
    manifest = dataset_root("synthetic:tiny", tmp_path) / "world.json"
    older = json.loads(manifest.read_text())
    del older["spec"]["area_fashion"], older["spec"]["visit_skew"]
    manifest.write_text(json.dumps(older))
    capsys.readouterr()
    again = load_dataset("synthetic:tiny", tmp_path)
    assert "regenerating" not in capsys.readouterr().out and again.train == world.train
    assert json.loads(manifest.read_text()) == older  # read as it is, not rewritten
