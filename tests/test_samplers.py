"""MMT's identity sampling (RandomMultipleGallerySampler): groups, other cameras first, repeats, determinism."""

from __future__ import annotations

import itertools

import pytest

from canu_core.data.records import ImageRecord
from canu_core.data.samplers import RandomIdentitySampler


def make_records(cameras_per_pid: dict[int, list[int]]) -> list[ImageRecord]:
    """One record per listed camera, e.g. {7: [0, 0, 1]} = pid 7 seen twice by camera 0 and once by camera 1."""
    return [
        ImageRecord(f"{pid}_{i}.jpg", pid, camid)
        for pid, cameras in cameras_per_pid.items()
        for i, camid in enumerate(cameras)
    ]


RECORDS = make_records(
    {
        0: [0, 0, 1, 1, 2, 2],  # three cameras, two images each
        1: [3, 3, 3, 3, 3],  # one camera only
        2: [0, 1, 2, 3],
        3: [4],  # a single image
        4: [1, 2],  # fewer images than K
        5: [0, 0, 0, 1],  # one image from another camera than the other three
    }
)


def groups(sampler: RandomIdentitySampler) -> list[list[int]]:
    """The sampler's stream cut into its groups: each identity comes once per pass, so a group is a run of one pid."""
    return [list(run) for _, run in itertools.groupby(sampler, key=lambda i: RECORDS[i].pid)]


def group_of(sampler: RandomIdentitySampler, pid: int) -> list[int]:
    return next(g for g in groups(sampler) if RECORDS[g[0]].pid == pid)


def test_every_identity_gives_one_group_of_k_and_a_single_image_its_anchor_alone():
    sampler = RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=0)
    found = groups(sampler)
    assert sorted(RECORDS[g[0]].pid for g in found) == [0, 1, 2, 3, 4, 5]  # each identity once per pass
    assert {RECORDS[g[0]].pid: len(g) for g in found} == {0: 3, 1: 3, 2: 3, 3: 1, 4: 3, 5: 3}
    assert len(sampler) == len(list(sampler)) == 5 * 3 + 1  # no identity dropped; the loader drops the last batch


def test_fill_comes_from_other_cameras_without_replacement_when_there_are_k():
    sampler = RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=1)
    for epoch in range(20):
        sampler.set_epoch(epoch)
        anchor, *fill = group_of(sampler, 0)  # four images from the two other cameras >= K = 3
        assert len(set(fill)) == 2 and all(RECORDS[i].camid != RECORDS[anchor].camid for i in fill)


def test_few_other_camera_images_are_repeated_rather_than_filled_from_the_anchor_camera():
    """pid 5, K = 4: an anchor from camera 0 has a single other-camera image, drawn 3 times (MMT's rule); an anchor
    from camera 1 has three camera-0 images, fewer than K: 3 draws with replacement among them."""
    sampler = RandomIdentitySampler(RECORDS, batch_ids=2, instances=4, seed=2)
    other_camera = RECORDS.index(ImageRecord("5_3.jpg", 5, 1))
    seen_anchor_cameras = set()
    for epoch in range(30):
        sampler.set_epoch(epoch)
        anchor, *fill = group_of(sampler, 5)
        seen_anchor_cameras.add(RECORDS[anchor].camid)
        if RECORDS[anchor].camid == 0:
            assert fill == [other_camera] * 3
        else:
            assert all(RECORDS[i].camid == 0 for i in fill) and len(fill) == 3
    assert seen_anchor_cameras == {0, 1}


def test_a_single_camera_identity_fills_with_its_other_images():
    without_replacement = RandomIdentitySampler(RECORDS, batch_ids=2, instances=4, seed=3)
    anchor, *fill = group_of(without_replacement, 1)  # 4 other images >= K = 4
    assert anchor not in fill and len(set(fill)) == 3
    with_replacement = RandomIdentitySampler(RECORDS, batch_ids=2, instances=7, seed=3)
    anchor, *fill = group_of(with_replacement, 1)  # 4 other images < K = 7: 6 draws among them
    assert anchor not in fill and len(fill) == 6 and len(set(fill)) <= 4


def test_order_depends_only_on_seed_epoch_and_pass():
    first = RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=5)
    second = RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=5)
    assert list(first) == list(second) == list(first)
    first.set_epoch(1)
    assert list(first) != list(second)
    second.set_epoch(1)
    assert list(first) == list(second)
    second.set_epoch(1, pass_index=1)
    assert list(first) != list(second)
    assert list(RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=6)) != list(first)


def test_outliers_too_few_ids_and_too_few_images_are_rejected():
    with pytest.raises(ValueError, match="pid -1"):
        RandomIdentitySampler(RECORDS + [ImageRecord("x.jpg", -1, 0)], batch_ids=2, instances=2)
    with pytest.raises(ValueError, match="6 identities"):
        RandomIdentitySampler(RECORDS, batch_ids=7, instances=2)
    with pytest.raises(ValueError, match="draws 3 images"):
        RandomIdentitySampler(make_records({0: [0], 1: [1], 2: [2]}), batch_ids=2, instances=4)
