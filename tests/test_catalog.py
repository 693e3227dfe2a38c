"""Datasets by name: synthetic folders per seed and camera coverage, regeneration of an older preset version, and
the coverage knob refused for real datasets."""

import dataclasses
import json

import pytest

from canu_core.data import catalog
from canu_core.data.catalog import dataset_root, load_dataset, world_spec
from canu_core.data.synthetic import PRESETS


def test_synthetic_folder_names_carry_seed_and_coverage(tmp_path):
    assert dataset_root("synthetic:tiny", tmp_path) == tmp_path / "synthetic_tiny_seed0"
    assert dataset_root("synthetic:tiny", tmp_path, 3, {"camera_coverage": 0.5}) == tmp_path / (
        "synthetic_tiny_seed3_coverage0.5"
    )
    knobs = {"visit_skew": 0.3, "area_fashion": 1.0, "camera_coverage": 0.2}
    assert (
        dataset_root("synthetic:tiny", tmp_path, 1, knobs)
        == tmp_path / "synthetic_tiny_seed1_coverage0.2_fashion1.0_skew0.3"
    )
    with pytest.raises(ValueError, match=r"unknown world knobs \['colour'\]"):
        dataset_root("synthetic:tiny", tmp_path, 1, {"colour": 1.0})


def test_coverage_replaces_only_the_preset_camera_coverage():
    spec = world_spec("synthetic:target", {"camera_coverage": 0.7})
    assert spec.camera_coverage == 0.7
    assert dataclasses.replace(spec, camera_coverage=PRESETS["target"].camera_coverage) == PRESETS["target"]
    assert world_spec("synthetic:target") is PRESETS["target"]
    with pytest.raises(ValueError, match="unknown synthetic preset 'nope'"):
        world_spec("synthetic:nope")


def test_coverage_world_is_generated_with_its_knob(tmp_path):
    world = load_dataset("synthetic:tiny", tmp_path, world={"camera_coverage": 1.0})
    assert world.extra["world"]["spec"]["camera_coverage"] == 1.0
    # coverage 1: every id of the 3-camera tiny world walks through all 3 cameras
    cameras = {}
    for record in world.train:
        cameras.setdefault(record.pid, set()).add(record.camid)
    assert {len(c) for c in cameras.values()} == {3}


def test_older_version_of_a_preset_is_regenerated(tmp_path, monkeypatch, capsys):
    older = dataclasses.replace(PRESETS["tiny"], occlusion_rate=0.0)
    monkeypatch.setitem(catalog.PRESETS, "tiny", older)
    load_dataset("synthetic:tiny", tmp_path)
    monkeypatch.undo()
    world = load_dataset("synthetic:tiny", tmp_path)
    assert "regenerating" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "synthetic_tiny_seed0" / "world.json").read_text())
    assert (
        manifest["spec"]["occlusion_rate"]
        == PRESETS["tiny"].occlusion_rate
        == world.extra["world"]["spec"]["occlusion_rate"]
    )


def test_coverage_of_a_real_dataset_is_an_error(tmp_path):
    (tmp_path / "Market-1501").mkdir()
    with pytest.raises(
        ValueError,
        match=r"camera_coverage are knobs of synthetic worlds.*leave target_coverage unset "
        r"\(found \{'camera_coverage': 0.5\}\)",
    ):
        dataset_root("market1501", tmp_path, world={"camera_coverage": 0.5})
