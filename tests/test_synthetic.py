"""The synthetic world (tiny preset): determinism, Market layout read back, splits, routes, knobs, reuse, figure."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import mutual_info_score

from canu_core.data.datasets import MARKET_FOLDERS, read_market1501
from canu_core.data.synthetic import PRESETS, WorldSpec, generate_world, plan_world, world_statistics
from canu_core.data.synthetic import spec as world_spec
from canu_core.data.synthetic import write as world_write
from canu_core.viz.world import plot_camera_samples

TINY = PRESETS["tiny"]
MARKET_FILE_NAME = re.compile(r"^(\d{4})_c(\d+)s1_(\d{6})_01\.png$")


def tiny(**changes) -> WorldSpec:
    return dataclasses.replace(TINY, **changes)


def all_records(dataset):
    return dataset.train + dataset.query + dataset.gallery


def file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def cameras_per_id(dataset) -> dict[int, set[int]]:
    cameras: dict[int, set[int]] = {}
    for record in all_records(dataset):
        if record.pid > 0:
            cameras.setdefault(record.pid, set()).add(record.camid)
    return cameras


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "world"
    return root, generate_world(TINY, root, seed=0)


# ---------------------------------------------------------------- determinism


def test_same_spec_and_seed_give_the_same_bytes(tmp_path, tiny_world):
    root, _ = tiny_world
    generate_world(TINY, tmp_path / "again", seed=0)
    first, second = file_bytes(root), file_bytes(tmp_path / "again")
    assert len(first) > 50 and first == second


def test_another_seed_gives_other_people_and_images(tmp_path, tiny_world):
    root, _ = tiny_world
    generate_world(TINY, tmp_path / "other", seed=1)
    first, second = file_bytes(root), file_bytes(tmp_path / "other")
    shared_images = set(first.values()) & set(second.values())
    assert first.keys() != second.keys() and not shared_images


# ---------------------------------------------------------------- layout, naming, splits


def test_market_layout_and_names(tiny_world):
    root, dataset = tiny_world
    assert sorted(p.name for p in root.iterdir()) == sorted([*MARKET_FOLDERS.values(), "world.json"])
    names = [p.name for folder in MARKET_FOLDERS.values() for p in (root / folder).iterdir()]
    assert all(MARKET_FILE_NAME.match(name) for name in names), names
    assert len(names) == len(all_records(dataset))
    with Image.open(dataset.train[0].path) as image:
        assert image.size == (TINY.width, TINY.height) and image.mode == "RGB"


def test_read_back_counts_are_exactly_what_the_spec_implies(tmp_path):
    # Fixed 3 images per (id, camera) and 2 cameras per id make every count a product of spec fields.
    spec = tiny(camera_coverage=0.0, images_per_camera=(3, 3))
    dataset = generate_world(spec, tmp_path / "w", seed=0)
    reread = read_market1501(tmp_path / "w", name=spec.name)
    assert [len(dataset.train), len(dataset.query), len(dataset.gallery)] == [
        len(reread.train),
        len(reread.query),
        len(reread.gallery),
    ]
    assert len(dataset.train) == spec.num_train_ids * 2 * 3
    assert len(dataset.query) == spec.num_test_ids * 2
    assert len(dataset.gallery) == spec.num_test_ids * 2 * 2 + spec.num_distractors
    assert dataset.num_cameras == spec.num_cameras and dataset.name == spec.name
    assert {r.pid for r in dataset.train} == set(range(1, spec.num_train_ids + 1))
    test_ids = set(range(spec.num_train_ids + 1, spec.num_train_ids + spec.num_test_ids + 1))
    assert {r.pid for r in dataset.query} == test_ids
    assert {r.pid for r in dataset.gallery} == test_ids | {0}


def test_query_is_one_image_per_test_id_and_camera_with_a_cross_camera_match(tiny_world):
    _, dataset = tiny_world
    query_pairs = Counter((r.pid, r.camid) for r in dataset.query)
    test_pairs = {(r.pid, r.camid) for r in dataset.query + dataset.gallery if r.pid > 0}
    assert set(query_pairs) == test_pairs and set(query_pairs.values()) == {1}
    for record in dataset.query:
        assert any(g.pid == record.pid and g.camid != record.camid for g in dataset.gallery)


def test_images_per_id_and_camera_stay_in_range(tiny_world):
    _, dataset = tiny_world
    counts = Counter((r.pid, r.camid) for r in all_records(dataset) if r.pid > 0)
    low, high = TINY.images_per_camera
    assert all(low <= n <= high for n in counts.values())


def test_test_ids_are_disjoint_from_train_ids_and_distractors_only_in_gallery(tiny_world):
    _, dataset = tiny_world
    train_ids = {r.pid for r in dataset.train}
    assert not train_ids & {r.pid for r in dataset.query + dataset.gallery}
    assert sum(r.pid == 0 for r in dataset.gallery) == TINY.num_distractors
    assert all(r.pid > 0 for r in dataset.train + dataset.query)
    assert all(len(cameras) >= 2 for cameras in cameras_per_id(dataset).values())


# ---------------------------------------------------------------- routes: coverage knob and adjacency


@pytest.mark.parametrize("coverage, expected", [(0.0, 2), (1.0, 4)])
def test_coverage_knob_ends(tmp_path, coverage, expected):
    spec = tiny(num_cameras=4, camera_coverage=coverage)
    dataset = generate_world(spec, tmp_path / "w", seed=0)
    assert {len(c) for c in cameras_per_id(dataset).values()} == {expected}


def test_coverage_lowers_the_id_camera_mutual_information(tmp_path):
    mi = [
        world_statistics(generate_world(tiny(camera_coverage=c), tmp_path / str(c), seed=0)).loc[
            "train", "id_camera_mi"
        ]
        for c in (0.0, 1.0)
    ]
    assert mi[0] > mi[1] + 0.2


def test_line_routes_are_runs_of_adjacent_cameras():
    plan = plan_world(dataclasses.replace(PRESETS["source"], num_distractors=0), seed=0)
    routes = [person.route for person in plan.identities]
    assert all(route == tuple(range(route[0], route[0] + len(route))) for route in routes)
    assert {camera for route in routes for camera in route} == set(range(6))


def test_ring_routes_are_arcs_and_some_wrap_around():
    spec = dataclasses.replace(PRESETS["target"], num_distractors=0)
    k = spec.num_cameras
    routes = [person.route for person in plan_world(spec, seed=0).identities]

    def is_arc(route):
        return any(set(route) == {(start + i) % k for i in range(len(route))} for start in route)

    assert all(is_arc(route) for route in routes)
    assert any(0 in route and k - 1 in route and len(route) < k for route in routes)


# ---------------------------------------------------------------- domains and camera styles


def test_source_and_target_are_different_domains():
    source, target = (
        plan_world(dataclasses.replace(PRESETS[name], num_train_ids=50, num_test_ids=50), seed=0)
        for name in ("source", "target")
    )
    assert len(source.cameras) == 6 and len(target.cameras) == 8
    assert not {p.appearance() for p in source.identities} & {p.appearance() for p in target.identities}
    assert not {c.wall for c in source.cameras} & {c.wall for c in target.cameras}
    assert not {c.gains for c in source.cameras} & {c.gains for c in target.cameras}


def test_appearances_are_unique_within_a_world_but_attributes_are_shared():
    people = plan_world(PRESETS["source"], seed=0).identities
    assert len({p.appearance() for p in people}) == len(people)
    upper_colour_counts = Counter(p.upper for p in people)
    assert len(upper_colour_counts) >= 10 and min(upper_colour_counts.values()) >= 10


def colour_statistics(records) -> np.ndarray:
    """Mean and standard deviation of each channel, per image."""
    features = []
    for record in records:
        with Image.open(record.path) as image:
            pixels = np.asarray(image, dtype=float).reshape(-1, 3) / 255
        features.append(np.concatenate([pixels.mean(0), pixels.std(0)]))
    return np.array(features)


def camera_accuracy_from_colours(dataset) -> float:
    """Nearest-camera-centroid accuracy on colour statistics alone (chance is about 1 / num_cameras)."""
    records = all_records(dataset)
    features, cameras = colour_statistics(records), np.array([r.camid for r in records])
    centroids = np.stack([features[cameras == c].mean(0) for c in range(dataset.num_cameras)])
    predicted = ((features[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((predicted == cameras).mean())


def test_cameras_are_recognisable_from_colours_and_style_strength_zero_removes_that(tmp_path, tiny_world):
    _, dataset = tiny_world
    styled = camera_accuracy_from_colours(dataset)
    neutral = camera_accuracy_from_colours(generate_world(tiny(style_strength=0.0), tmp_path / "w", seed=0))
    assert styled >= 0.9
    assert neutral < styled - 0.3


def test_every_background_texture_renders(tmp_path):
    spec = tiny(num_cameras=len(world_spec.TEXTURES))
    assert {style.texture for style in plan_world(spec, seed=0).cameras} == set(world_spec.TEXTURES)
    dataset = generate_world(spec, tmp_path / "w", seed=0)
    for camid in range(spec.num_cameras):
        record = next(r for r in all_records(dataset) if r.camid == camid)
        with Image.open(record.path) as image:
            assert image.size == (spec.width, spec.height)
            assert np.asarray(image).std() > 5  # not a flat image


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"camera_coverage": 1.5}, "camera_coverage"),
        ({"camera_coverage": -0.1}, "camera_coverage"),
        ({"num_cameras": 1}, "num_cameras"),
        ({"num_cameras": 2.5}, "num_cameras"),
        ({"camera_layout": "grid"}, "camera_layout"),
        ({"num_train_ids": 0}, "num_train_ids"),
        ({"num_train_ids": 5000, "num_test_ids": 5000}, "9999"),
        ({"images_per_camera": (1, 3)}, "images_per_camera"),
        ({"images_per_camera": (4, 3)}, "images_per_camera"),
        ({"num_distractors": -1}, "num_distractors"),
        ({"height": 16}, "height"),
        ({"width": 8}, "width"),
        ({"style_strength": 3.0}, "style_strength"),
        ({"occlusion_rate": 2.0}, "occlusion_rate"),
    ],
)
def test_bad_values_are_rejected_with_the_field_named(changes, field):
    with pytest.raises(ValueError, match=field):
        tiny(**changes)


def test_every_preset_is_valid_and_lists_are_accepted_for_the_range():
    assert set(PRESETS) >= {"source", "target", "tiny"}
    assert tiny(images_per_camera=[2, 3]).images_per_camera == (2, 3)


# ---------------------------------------------------------------- world.json: reuse and mismatch


def test_existing_world_is_reused_without_rendering(tiny_world, monkeypatch):
    root, dataset = tiny_world
    before = file_bytes(root)

    def no_rendering(*args, **kwargs):
        raise AssertionError("the world should have been reused")

    monkeypatch.setattr(world_write, "write_world", no_rendering)
    again = generate_world(TINY, root, seed=0)
    assert again.train == dataset.train and again.gallery == dataset.gallery and file_bytes(root) == before
    assert again.extra["world"]["seed"] == 0


def test_two_processes_asking_for_a_new_world_at_once_render_it_once(tmp_path, monkeypatch):
    """A study's two parallel runs on a new target: one renders, the other waits for it and reads the same world
    (without the lock both rendered, and one replaced the folder while the other read it)."""
    import threading

    rendered = []
    real_write = world_write.write_world

    def counting_write(plan, folder):
        rendered.append(folder)
        real_write(plan, folder)

    monkeypatch.setattr(world_write, "write_world", counting_write)
    start, worlds, errors = threading.Barrier(2), [], []

    def ask():
        start.wait()
        try:
            worlds.append(generate_world(TINY, tmp_path / "w", seed=0))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(rendered) == 1
    assert worlds[0].train == worlds[1].train and worlds[0].gallery == worlds[1].gallery


def test_other_world_in_the_folder_is_an_error_unless_overwrite(tmp_path):
    root = tmp_path / "w"
    generate_world(TINY, root, seed=0)
    with pytest.raises(ValueError, match="overwrite"):
        generate_world(TINY, root, seed=1)
    with pytest.raises(ValueError, match="overwrite"):
        generate_world(tiny(camera_coverage=1.0), root, seed=0)
    replaced = generate_world(TINY, root, seed=1, overwrite=True)
    assert replaced.extra["world"]["seed"] == 1
    generate_world(TINY, tmp_path / "fresh", seed=1)
    assert file_bytes(root) == file_bytes(tmp_path / "fresh")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_incomplete_world_is_generated_again_and_a_foreign_folder_is_an_error(tmp_path):
    root = tmp_path / "w"
    dataset = generate_world(TINY, root, seed=0)
    whole = file_bytes(root)
    Path(dataset.gallery[0].path).unlink()
    with pytest.warns(UserWarning, match=r"holds \d+ images, its world.json says \d+: the world is incomplete"):
        generate_world(TINY, root, seed=0)
    assert file_bytes(root) == whole
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        generate_world(TINY, foreign, seed=0, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------- statistics and figure


def test_world_statistics_match_the_dataset(tiny_world):
    _, dataset = tiny_world
    stats = world_statistics(dataset)
    summary = dataset.summary()
    for split in ("train", "query", "gallery"):
        assert stats.loc[split, "images"] == summary[split]["images"]
        assert stats.loc[split, "ids"] == summary[split]["ids"]
        assert stats.loc[split, "distractors"] == summary[split]["distractors"]
        per_camera = [stats.loc[split, f"c{c + 1}"] for c in range(dataset.num_cameras)]
        assert sum(per_camera) == summary[split]["images"]
    train_mi = mutual_info_score([r.pid for r in dataset.train], [r.camid for r in dataset.train])
    assert stats.loc["train", "id_camera_mi"] == pytest.approx(train_mi)
    assert stats.loc["test", "images"] == summary["query"]["images"] + summary["gallery"]["images"]


def test_plot_camera_samples_writes_a_png(tmp_path, tiny_world):
    _, dataset = tiny_world
    path = tmp_path / "figures" / "cameras.png"
    fig = plot_camera_samples(dataset, path, n_per_camera=4)
    assert len(fig.axes) == dataset.num_cameras * 4
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
