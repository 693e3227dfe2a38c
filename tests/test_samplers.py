"""P x K identity sampling: batch composition, camera preference, repeats only when needed, determinism."""
from __future__ import annotations

import pytest

from canu_core.data.records import ImageRecord
from canu_core.data.samplers import RandomIdentitySampler


def make_records(cameras_per_pid: dict[int, list[int]]) -> list[ImageRecord]:
    """One record per listed camera, e.g. {7: [0, 0, 1]} = pid 7 seen twice by camera 0 and once by camera 1."""
    return [ImageRecord(f"{pid}_{i}.jpg", pid, camid)
            for pid, cameras in cameras_per_pid.items() for i, camid in enumerate(cameras)]


RECORDS = make_records({
    0: [0, 0, 1, 1, 2, 2],    # three cameras, two images each
    1: [3, 3, 3, 3, 3],       # one camera only
    2: [0, 1, 2, 3],
    3: [4],                   # a single image
    4: [1, 2],                # fewer images than K
    5: [0, 0, 0, 1],
})


def groups_of(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def test_batches_hold_p_distinct_ids_of_k_instances_each():
    sampler = RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=0)
    indices = list(sampler)
    assert len(indices) == len(sampler) == 6 * 3
    groups = groups_of(indices, 3)
    pids_per_group = [{RECORDS[i].pid for i in group} for group in groups]
    assert all(len(pids) == 1 for pids in pids_per_group)
    group_pids = [pids.pop() for pids in pids_per_group]
    assert sorted(group_pids) == [0, 1, 2, 3, 4, 5]  # every identity exactly once per epoch
    for batch in groups_of(group_pids, 2):
        assert len(set(batch)) == 2


def test_leftover_identities_are_dropped_so_batches_stay_full():
    sampler = RandomIdentitySampler(RECORDS, batch_ids=4, instances=2, seed=0)
    assert len(sampler) == len(list(sampler)) == 1 * 4 * 2  # 6 ids // 4 = 1 batch


def test_instances_cover_every_camera_of_the_identity():
    sampler = RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=1)
    for epoch in range(20):
        sampler.set_epoch(epoch)
        group = next(g for g in groups_of(list(sampler), 3) if RECORDS[g[0]].pid == 0)
        assert {RECORDS[i].camid for i in group} == {0, 1, 2}


def test_repeats_only_when_the_identity_has_fewer_than_k_images():
    sampler = RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=2)
    for epoch in range(10):
        sampler.set_epoch(epoch)
        for group in groups_of(list(sampler), 3):
            pid = RECORDS[group[0]].pid
            available = {i for i, r in enumerate(RECORDS) if r.pid == pid}
            if len(available) >= 3:
                assert len(set(group)) == 3
            else:
                assert set(group) == available  # every image used, the rest repeats


def test_single_image_identity_is_repeated():
    sampler = RandomIdentitySampler(RECORDS, batch_ids=2, instances=4, seed=0)
    single = RECORDS.index(ImageRecord("3_0.jpg", 3, 4))
    assert [single] * 4 in groups_of(list(sampler), 4)


def test_order_depends_only_on_seed_and_epoch():
    first = RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=5)
    second = RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=5)
    assert list(first) == list(second) == list(first)
    first.set_epoch(1)
    assert list(first) != list(second)
    second.set_epoch(1)
    assert list(first) == list(second)
    assert list(RandomIdentitySampler(RECORDS, batch_ids=2, instances=3, seed=6)) != list(second)


def test_outliers_and_too_few_ids_are_rejected():
    with pytest.raises(ValueError, match="pid -1"):
        RandomIdentitySampler(RECORDS + [ImageRecord("x.jpg", -1, 0)], batch_ids=2, instances=2)
    with pytest.raises(ValueError, match="6 identities"):
        RandomIdentitySampler(RECORDS, batch_ids=7, instances=2)
