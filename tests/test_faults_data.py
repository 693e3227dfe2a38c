"""Bad dataset files and unevaluable test splits fail when the dataset is read, naming each file, the cause and
what to do (issue 10): truncated, empty, non-image and missing files, a single-camera test split, and load_image's
errors on files that reach it anyway."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fake_layouts import MARKET_GALLERY, MARKET_QUERY, MARKET_TRAIN, write_market_layout
from PIL import Image

from canu_core.data import checks
from canu_core.data.catalog import REAL_FOLDERS, load_dataset
from canu_core.data.checks import (
    BadImageFilesError,
    UnevaluableSplitError,
    check_evaluable,
    check_image_files,
    image_file_problem,
)
from canu_core.data.datasets import read_market1501
from canu_core.data.image_dataset import ImageFileError, load_image
from canu_core.data.records import ImageRecord, ReidDataset
from canu_core.evaluation import NO_TRUE_MATCH, evaluate_rank

FIX = "Replace these files or remove them from the dataset folder."
UNEVALUABLE = (
    "The test split needs identities seen by at least two cameras (a query image in one, a gallery image in another)."
)


def encoded(image_format: str) -> bytes:
    """A valid 32x64 image (random pixels, seeded, so files are a few KB) in PIL format `image_format`."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


JPEG, PNG, BMP = encoded("JPEG"), encoded("PNG"), encoded("BMP")


def market_folder(data_root: Path, train=MARKET_TRAIN, query=MARKET_QUERY, gallery=MARKET_GALLERY) -> Path:
    """A Market-1501 folder under data_root (where load_dataset looks) whose every image is a real JPEG."""
    root = write_market_layout(data_root / REAL_FOLDERS["market1501"][0], train, query, gallery)
    for path in root.rglob("*.jpg"):
        path.write_bytes(JPEG)
    return root


# ---------------------------------------------------------------- one file: image_file_problem


@pytest.mark.parametrize(
    "content, problem",
    [
        (JPEG, None),
        (JPEG + b"\x00\x00\r\n", None),  # padding some writers leave after the end-of-image marker
        (PNG, None),
        (BMP, None),
        (JPEG[: len(JPEG) // 2], "truncated JPEG (no end-of-image marker FF D9 at its end)"),
        (PNG[: len(PNG) // 2], "truncated PNG (no IEND chunk at its end)"),
        (BMP[:3000], f"truncated BMP (3000 bytes, its header says {len(BMP)})"),
        (b"", "empty file (0 bytes)"),
        (b"<!DOCTYPE html><html></html>\n", "not a JPEG, PNG or BMP file (it starts with b'<!DOCTYP')"),
        (b"\xff\xd8\xff" + bytes(100) + b"\xff\xd9", "its header cannot be read by PIL"),
    ],
    ids=[
        "jpeg",
        "padded-jpeg",
        "png",
        "bmp",
        "truncated-jpeg",
        "truncated-png",
        "truncated-bmp",
        "empty",
        "html",
        "jpeg-bad-header",
    ],
)
def test_image_file_problem(tmp_path: Path, content: bytes, problem: str | None):
    path = tmp_path / "0001_c1s1_000001_00.jpg"
    path.write_bytes(content)
    assert image_file_problem(str(path)) == problem


def test_image_file_problem_of_a_missing_file(tmp_path: Path):
    assert image_file_problem(str(tmp_path / "gone.jpg")) == "file not found"


# ---------------------------------------------------------------- a dataset's files, checked by load_dataset


def test_clean_market_folder_loads(tmp_path: Path):
    root = market_folder(tmp_path)
    (root / "query" / MARKET_QUERY[0]).write_bytes(JPEG + b"\x00\x00")
    (root / "bounding_box_test" / MARKET_GALLERY[0]).write_bytes(PNG)
    assert load_dataset("market1501", tmp_path) == read_market1501(root)


def test_bad_files_are_all_named_with_their_problem(tmp_path: Path):
    root = market_folder(tmp_path)
    truncated = root / "bounding_box_train" / "0002_c1s1_000451_03.jpg"
    empty = root / "query" / "0007_c5s1_000001_01.jpg"
    not_an_image = root / "bounding_box_test" / "0002_c4s1_000011_01.jpg"
    truncated.write_bytes(JPEG[: len(JPEG) // 2])
    empty.write_bytes(b"")
    not_an_image.write_text("<!DOCTYPE html><html>404</html>")
    (root / "bounding_box_train" / "-1_c1s1_000001_00.jpg").write_bytes(b"")  # junk: dropped, never read
    with pytest.raises(BadImageFilesError) as error:
        load_dataset("market1501", tmp_path)
    assert isinstance(error.value, OSError)
    assert str(error.value) == (
        f"3 of 9 image files cannot be read: "
        f"{truncated}: truncated JPEG (no end-of-image marker FF D9 at its end); "
        f"{empty}: empty file (0 bytes); "
        f"{not_an_image}: not a JPEG, PNG or BMP file (it starts with b'<!DOCTYP'). {FIX}"
    )


def test_at_most_ten_bad_files_are_listed_with_the_count(tmp_path: Path):
    train = [f"0001_c1s1_{frame:06d}_00.jpg" for frame in range(12)]
    root = market_folder(tmp_path, train=train, query=["0001_c1s1_000100_00.jpg"], gallery=["0001_c2s1_000200_00.jpg"])
    for name in train:
        (root / "bounding_box_train" / name).write_bytes(b"")
    with pytest.raises(BadImageFilesError) as error:
        load_dataset("market1501", tmp_path)
    listed = "; ".join(f"{root / 'bounding_box_train' / name}: empty file (0 bytes)" for name in train[:10])
    assert str(error.value) == f"12 of 14 image files cannot be read: {listed}; ... and 2 more. {FIX}"


def test_missing_file_of_a_record_list(tmp_path: Path):
    gone = tmp_path / "0001_c1s1_000001_00.jpg"
    with pytest.raises(BadImageFilesError) as error:
        check_image_files([ImageRecord(str(gone), 1, 0)])
    assert str(error.value) == f"1 of 1 image files cannot be read: {gone}: file not found. {FIX}"


def test_progress_bar_only_for_many_files(tmp_path: Path, monkeypatch, capsys):
    root = market_folder(tmp_path)
    records = read_market1501(root).train
    check_image_files(records)
    assert "checking image files" not in capsys.readouterr().err
    monkeypatch.setattr(checks, "PROGRESS_BAR_FILES", len(records) - 1)
    check_image_files(records)
    assert "checking image files" in capsys.readouterr().err


# ---------------------------------------------------------------- synthetic worlds


def test_tiny_worlds_still_load(tiny_data_root: Path):
    for preset in ("tiny", "tiny_target"):
        world = load_dataset(f"synthetic:{preset}", tiny_data_root)
        assert world.train and world.query and world.gallery


def test_damaged_synthetic_world_is_reported(tiny_data_root: Path, tmp_path: Path):
    shutil.copytree(tiny_data_root / "synthetic_tiny_seed0", tmp_path / "synthetic_tiny_seed0")
    damaged = sorted((tmp_path / "synthetic_tiny_seed0" / "query").glob("*.png"))[0]
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(
        BadImageFilesError,
        match=rf"1 of \d+ image files cannot be read: {re.escape(str(damaged))}: "
        r"truncated PNG \(no IEND chunk at its end\)\. Replace",
    ):
        load_dataset("synthetic:tiny", tmp_path)


# ---------------------------------------------------------------- test split that cannot be evaluated


def test_single_camera_test_split_is_refused(tmp_path: Path):
    root = market_folder(
        tmp_path,
        query=["0002_c1s1_000001_01.jpg", "0007_c1s1_000002_01.jpg"],
        gallery=["0002_c1s1_000011_01.jpg", "0007_c1s1_000041_01.jpg", "0000_c1s1_000031_00.jpg"],
    )
    with pytest.raises(UnevaluableSplitError) as error:
        load_dataset("market1501", tmp_path)
    assert isinstance(error.value, ValueError)
    assert str(error.value) == (
        f"the test split of {root.absolute()} cannot be evaluated: no query has a gallery image of the same "
        f"identity from another camera (query cameras: c1; gallery cameras: c1). {UNEVALUABLE}"
    )


def test_other_cameras_holding_only_other_ids_are_refused(tmp_path: Path):
    market_folder(
        tmp_path,
        query=["0002_c1s1_000001_01.jpg"],
        gallery=["0002_c1s1_000011_01.jpg", "0007_c2s1_000041_01.jpg", "0000_c3s1_000031_00.jpg"],
    )
    with pytest.raises(UnevaluableSplitError, match=r"\(query cameras: c1; gallery cameras: c1, c2, c3\)"):
        load_dataset("market1501", tmp_path)


def split(query: list[tuple[int, int]], gallery: list[tuple[int, int]]) -> ReidDataset:
    """A dataset with only a test split, from (pid, camid) pairs."""

    def records(pairs):
        return [ImageRecord(f"{i}.jpg", pid, camid) for i, (pid, camid) in enumerate(pairs)]

    return ReidDataset(name="split", train=[], query=records(query), gallery=records(gallery), num_cameras=3)


def rank(dataset: ReidDataset):
    """The ranking protocol of canu_core.evaluation on the test split, all distances equal."""
    query, gallery = dataset.query, dataset.gallery
    return evaluate_rank(
        np.zeros((len(query), len(gallery)), dtype=np.float32),
        [r.pid for r in query],
        [r.pid for r in gallery],
        [r.camid for r in query],
        [r.camid for r in gallery],
    )


@pytest.mark.parametrize(
    "query, gallery, evaluable",
    [
        ([(1, 0)], [(1, 0), (2, 1)], False),  # the same id only in the query's camera
        ([(1, 0), (2, 1)], [(1, 0), (2, 2)], True),  # one query with a match is enough
        ([(1, 0)], [(1, 0), (-1, 1)], False),  # junk is removed from every ranking
        ([(1, 0)], [(0, 1), (1, 2)], True),  # distractors stay, as non-matches
    ],
)
def test_check_evaluable_agrees_with_the_ranking_protocol(query, gallery, evaluable):
    dataset = split(query, gallery)
    if evaluable:
        check_evaluable(dataset)
        assert rank(dataset).num_valid_queries >= 1
    else:
        with pytest.raises(UnevaluableSplitError, match="the test split of split cannot be evaluated"):
            check_evaluable(dataset)
        with pytest.raises(ValueError, match=re.escape(NO_TRUE_MATCH)):
            rank(dataset)


# ---------------------------------------------------------------- load_image


@pytest.mark.parametrize(
    "content, cause",
    [
        (JPEG[: len(JPEG) // 2], "truncated JPEG (no end-of-image marker FF D9 at its end)"),
        (b"", "empty file (0 bytes)"),
        (b"GIF89a", "not a JPEG, PNG or BMP file (it starts with b'GIF89a')"),
    ],
    ids=["truncated-jpeg", "empty", "gif"],
)
def test_load_image_names_the_file_the_cause_and_the_fix(tmp_path: Path, content: bytes, cause: str):
    path = tmp_path / "0001_c1s1_000001_00.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageFileError) as error:
        load_image(str(path))
    assert isinstance(error.value, OSError)
    assert str(error.value) == (
        f"cannot decode image {path}: {cause}. Replace the file or remove it from the dataset folder."
    )


def test_load_image_of_a_file_only_decoding_finds_broken(tmp_path: Path):
    """Header and end intact, compressed data zeroed in the middle: the cause is PIL's own error."""
    path = tmp_path / "0001_c1s1_000001_00.png"
    path.write_bytes(PNG[: len(PNG) // 2] + bytes(200) + PNG[len(PNG) // 2 + 200 :])
    assert image_file_problem(str(path)) is None
    with pytest.raises(ImageFileError) as error:
        load_image(str(path))
    assert str(error.value) == (
        f"cannot decode image {path}: {error.value.__cause__}. Replace the file or remove it from the dataset folder."
    )


def test_load_image_of_a_missing_file(tmp_path: Path):
    path = tmp_path / "gone.jpg"
    with pytest.raises(ImageFileError) as error:
        load_image(str(path))
    assert (
        str(error.value) == f"cannot decode image {path}: file not found. Replace the file or remove it from the "
        "dataset folder."
    )


def test_load_image_still_decodes_once(tmp_path: Path):
    path = tmp_path / "0001_c1s1_000001_00.jpg"
    path.write_bytes(JPEG)
    image = load_image(str(path))
    assert image.mode == "RGB" and image.size == (32, 64)
    assert load_image(str(path)) is image
