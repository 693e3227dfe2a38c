"""Dataset readers on tiny fake datasets written in each real layout: every count, pid and camid checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fake_layouts import (
    DUKE_GALLERY,
    DUKE_QUERY,
    DUKE_TRAIN,
    MARKET_GALLERY,
    MARKET_QUERY,
    MARKET_TRAIN,
    MSMT_ENTRIES,
    write_images,
    write_market_layout,
    write_msmt_layout,
)

from canu_core.data.datasets import (
    DatasetLayoutError,
    read_dataset,
    read_dukemtmc,
    read_market1501,
    read_market_style,
    read_msmt17,
)
from canu_core.data.records import ReidDataset


def relative(records, root: Path) -> list[tuple[str, int, int]]:
    """(path relative to root, pid, camid) per record, to compare against hand-written expectations."""
    return [(Path(r.path).relative_to(root.absolute()).as_posix(), r.pid, r.camid) for r in records]


@pytest.fixture
def market_root(tmp_path: Path) -> Path:
    return write_market_layout(tmp_path / "market", MARKET_TRAIN, MARKET_QUERY, MARKET_GALLERY)


# ---------------------------------------------------------------- Market-1501 / Duke / Market-style


def test_market_records_protocol_and_order(market_root: Path):
    data = read_market1501(market_root)
    assert data.name == "market1501"
    assert relative(data.train, market_root) == [
        ("bounding_box_train/0002_c1s1_000451_03.jpg", 2, 0),
        ("bounding_box_train/0002_c2s1_000301_01.jpg", 2, 1),
        ("bounding_box_train/0007_c3s1_000101_02.jpg", 7, 2),
    ]
    assert relative(data.query, market_root) == [
        ("query/0002_c6s1_000001_01.jpg", 2, 5),
        ("query/0007_c5s1_000001_01.jpg", 7, 4),
    ]
    assert relative(data.gallery, market_root) == [
        ("bounding_box_test/0000_c2s1_000031_00.jpg", 0, 1),
        ("bounding_box_test/0000_c3s1_000061_00.jpg", 0, 2),
        ("bounding_box_test/0002_c4s1_000011_01.jpg", 2, 3),
        ("bounding_box_test/0007_c1s1_000041_01.jpg", 7, 0),
    ]
    assert data.num_cameras == 6
    assert data.extra == {
        "root": str(market_root.absolute()),
        "dropped_junk": {"train": 1, "query": 0, "gallery": 2},
        "dropped_train_distractors": 1,
    }


def test_market_summary(market_root: Path):
    data = read_market1501(market_root)
    assert data.num_train_pids == 2
    assert data.summary() == {
        "train": {"images": 3, "ids": 2, "cameras": 3, "distractors": 0},
        "query": {"images": 2, "ids": 2, "cameras": 2, "distractors": 0},
        "gallery": {"images": 4, "ids": 2, "cameras": 4, "distractors": 2},
    }


def test_dukemtmc_names_and_eight_cameras(tmp_path: Path):
    root = write_market_layout(tmp_path / "duke", DUKE_TRAIN, DUKE_QUERY, DUKE_GALLERY)
    data = read_dukemtmc(root)
    assert data.name == "dukemtmc"
    assert relative(data.train, root) == [
        ("bounding_box_train/0005_c2_f0046985.jpg", 5, 1),
        ("bounding_box_train/0005_c8_f0051234.jpg", 5, 7),
        ("bounding_box_train/0012_c1_f0000100.jpg", 12, 0),
    ]
    assert relative(data.query, root) == [("query/0005_c7_f0047000.jpg", 5, 6)]
    assert relative(data.gallery, root) == [
        ("bounding_box_test/0000_c4_f0001000.jpg", 0, 3),
        ("bounding_box_test/0005_c3_f0046000.jpg", 5, 2),
    ]
    assert data.num_cameras == 8


def test_market_style_suffixes_camera_count_from_data_and_ignored_files(tmp_path: Path):
    root = write_market_layout(
        tmp_path / "synth",
        train=["0001_c9s1_000001_00.png", "0001_c2s1_000002_00.jpeg", "0003_c1_x.JPG"],
        query=["0001_c3.png"],
        gallery=["0003_c4.png"],
    )
    (root / "bounding_box_train" / "notes.txt").write_text("not an image")
    (root / "bounding_box_train" / "0004_c1_in_a_subfolder.jpg").mkdir()
    data = read_market_style(root, "synth")
    assert data.name == "synth"
    assert relative(data.train, root) == [
        ("bounding_box_train/0001_c2s1_000002_00.jpeg", 1, 1),
        ("bounding_box_train/0001_c9s1_000001_00.png", 1, 8),
        ("bounding_box_train/0003_c1_x.JPG", 3, 0),
    ]
    assert relative(data.query, root) == [("query/0001_c3.png", 1, 2)]
    assert relative(data.gallery, root) == [("bounding_box_test/0003_c4.png", 3, 3)]
    assert data.num_cameras == 9


def test_market_bad_names_are_reported_with_count_and_five_examples(market_root: Path):
    write_images(
        market_root / "bounding_box_train",
        ["foo.jpg", "0002_x1s1.jpg", "0003_c0s1_000001_00.jpg", "-2_c1s1_000001_00.jpg"],
    )
    write_images(market_root / "query", ["a_c1.png"])
    write_images(market_root / "bounding_box_test", ["12-3_c1s1.jpg"])
    with pytest.raises(DatasetLayoutError) as error:
        read_market1501(market_root)
    message = str(error.value)
    assert (
        "6 in all, e.g. bounding_box_train/-2_c1s1_000001_00.jpg, bounding_box_train/0002_x1s1.jpg, "
        "bounding_box_train/0003_c0s1_000001_00.jpg, bounding_box_train/foo.jpg, query/a_c1.png" in message
    )
    assert "12-3_c1s1.jpg" not in message


def test_market_missing_folder_names_expected_and_found(tmp_path: Path, market_root: Path):
    shutil.rmtree(market_root / "bounding_box_test")
    (market_root / "readme.txt").write_text("")
    with pytest.raises(DatasetLayoutError) as error:
        read_market1501(market_root)
    message = str(error.value)
    assert "missing: bounding_box_test/" in message
    assert f"found in {market_root.absolute()}: bounding_box_train/, query/, readme.txt" in message


def test_market_root_that_does_not_exist(tmp_path: Path):
    with pytest.raises(DatasetLayoutError) as error:
        read_market1501(tmp_path / "nowhere")
    message = str(error.value)
    assert "missing: bounding_box_train/, query/, bounding_box_test/" in message
    assert "nowhere does not exist" in message


def test_market_empty_folder_is_an_error(market_root: Path):
    shutil.rmtree(market_root / "query")
    (market_root / "query").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"query holds no image files \(.jpg, .jpeg, .png\)"):
        read_market1501(market_root)


# ---------------------------------------------------------------- MSMT17

MSMT_TRAIN_WITH_VAL = [  # list labels shifted by one: label 0 -> pid 1
    ("0000/0000_000_01_0303morning_0015_0.jpg", 1, 0),
    ("0000/0000_001_05_0303morning_0016_0.jpg", 1, 4),
    ("0000/0000_002_03_0303morning_0020_0.jpg", 1, 2),
    ("0001/0001_000_15_0303noon_0001_1.jpg", 2, 14),
    ("0002/0002_000_07_0304noon_0003_0.jpg", 3, 6),
]
MSMT_QUERY = [("0000/0000_000_02_0113morning_0002_0.jpg", 1, 1), ("0001/0001_000_09_0113morning_0001_0.jpg", 2, 8)]
MSMT_GALLERY = [
    ("0000/0000_001_04_0113noon_0003_0.jpg", 1, 3),
    ("0001/0001_001_11_0113noon_0004_0.jpg", 2, 10),
    ("0001/0001_002_14_0114noon_0005_0.jpg", 2, 13),
]


def prefixed(folder: str, rows):
    return [(f"{folder}/{path}", pid, camid) for path, pid, camid in rows]


@pytest.mark.parametrize(
    "version, train_folder, test_folder", [("V1", "train", "test"), ("V2", "mask_train_v2", "mask_test_v2")]
)
def test_msmt_auto_version_with_train_and_val(tmp_path: Path, version, train_folder, test_folder):
    root = write_msmt_layout(tmp_path / "msmt", version, MSMT_ENTRIES)
    data = read_msmt17(root)
    assert data.name == "msmt17"
    assert relative(data.train, root) == prefixed(train_folder, MSMT_TRAIN_WITH_VAL)
    assert relative(data.query, root) == prefixed(test_folder, MSMT_QUERY)
    assert relative(data.gallery, root) == prefixed(test_folder, MSMT_GALLERY)
    assert data.num_cameras == 15
    assert data.num_train_pids == 3
    assert data.extra == {
        "root": str(root.absolute()),
        "version": version,
        "combine_trainval": True,
        "val_images": 2,
        "pid_offset": 1,
    }
    assert data.summary()["train"] == {"images": 5, "ids": 3, "cameras": 5, "distractors": 0}


def test_msmt_train_only_needs_no_val_list(tmp_path: Path):
    root = write_msmt_layout(tmp_path / "msmt", "V1", MSMT_ENTRIES)
    (root / "list_val.txt").unlink()
    data = read_msmt17(root, version="V1", combine_trainval=False)
    assert relative(data.train, root) == prefixed("train", [MSMT_TRAIN_WITH_VAL[i] for i in (0, 1, 3)])
    assert data.num_train_pids == 2
    assert len(data.query) == 2 and len(data.gallery) == 3
    assert data.extra["val_images"] == 0
    with pytest.raises(DatasetLayoutError, match="MSMT17 V1 layout expected, missing: list_val.txt"):
        read_msmt17(root, combine_trainval=True)


def test_msmt_explicit_version_must_match_the_folders(tmp_path: Path):
    root = write_msmt_layout(tmp_path / "msmt", "V2", MSMT_ENTRIES)
    with pytest.raises(DatasetLayoutError) as error:
        read_msmt17(root, version="V1")
    message = str(error.value)
    assert "MSMT17 V1 layout expected, missing: train/, test/" in message
    assert "found in" in message and "mask_test_v2/, mask_train_v2/" in message


def test_msmt_auto_refuses_no_folders_and_both_versions(tmp_path: Path):
    root = tmp_path / "msmt"
    root.mkdir()
    (root / "list_train.txt").write_text("")
    with pytest.raises(DatasetLayoutError) as error:
        read_msmt17(root)
    message = str(error.value)
    assert "V1: train/, test/ or V2: mask_train_v2/, mask_test_v2/" in message
    assert "no image folders" in message and "list_train.txt" in message
    (root / "test").mkdir()
    (root / "mask_train_v2").mkdir()
    with pytest.raises(DatasetLayoutError, match="both V1 and V2 folders are present; pass version='V1' or 'V2'"):
        read_msmt17(root)


def test_msmt_unknown_version(tmp_path: Path):
    with pytest.raises(ValueError, match="must be 'auto', 'V1' or 'V2', got 'V3'"):
        read_msmt17(tmp_path, version="V3")


def test_msmt_bad_list_lines_are_reported_with_line_numbers(tmp_path: Path):
    root = write_msmt_layout(tmp_path / "msmt", "V1", MSMT_ENTRIES)
    with (root / "list_query.txt").open("a") as lines:
        lines.write("0000/0000_000_02_0113morning_0009_0.jpg\n\n0000/0000_000_xx_a.jpg 0\n0000/0000_000_03_b.jpg x\n")
    with pytest.raises(DatasetLayoutError) as error:
        read_msmt17(root)
    message = str(error.value)
    assert "list_query.txt: lines that do not parse" in message
    assert (
        "3 in all, e.g. line 3: '0000/0000_000_02_0113morning_0009_0.jpg', "
        "line 5: '0000/0000_000_xx_a.jpg 0', line 6: '0000/0000_000_03_b.jpg x'"
    ) in message


def test_msmt_listed_file_missing_on_disk(tmp_path: Path):
    root = write_msmt_layout(tmp_path / "msmt", "V1", MSMT_ENTRIES)
    gone = root / "test" / "0001/0001_001_11_0113noon_0004_0.jpg"
    gone.unlink()
    with pytest.raises(DatasetLayoutError) as error:
        read_msmt17(root)
    assert f"list_gallery.txt lists files missing on disk: 1 in all, e.g. {gone.absolute()}" in str(error.value)


# ---------------------------------------------------------------- dispatch


def test_read_dataset_dispatches_by_name(tmp_path: Path, market_root: Path):
    assert read_dataset("market1501", market_root) == read_market1501(market_root)
    assert read_dataset("dukemtmc", market_root).name == "dukemtmc"
    synth = read_dataset("market_style", market_root, name="synth")
    assert isinstance(synth, ReidDataset) and synth.name == "synth" and len(synth.gallery) == 4
    msmt_root = write_msmt_layout(tmp_path / "msmt", "V1", MSMT_ENTRIES)
    assert len(read_dataset("msmt17", msmt_root, combine_trainval=False).train) == 3


def test_read_dataset_unknown_name_lists_valid_names(tmp_path: Path):
    with pytest.raises(
        ValueError, match="unknown dataset 'market'; valid names: market1501, dukemtmc, msmt17, market_style"
    ):
        read_dataset("market", tmp_path)
