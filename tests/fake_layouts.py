"""Writers of tiny fake datasets in the real layouts (Market / Duke folders, MSMT17 V1 / V2 with list files).

Every image is the same valid 8x4 PNG, whatever its suffix, so readers and image loaders can both use them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image

from canu_core.data.datasets import MARKET_FOLDERS, MSMT_FOLDERS, MSMT_LISTS


def _tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 8), (120, 60, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


TINY_PNG = _tiny_png()


def write_images(folder: Path, relative_paths: Iterable[str]) -> None:
    """Write the tiny image at each relative path under folder (parents created)."""
    for relative in relative_paths:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(TINY_PNG)


def write_market_layout(root: Path, train: Sequence[str], query: Sequence[str], gallery: Sequence[str]) -> Path:
    """Market-1501 / Duke layout: the given file names in bounding_box_train/, query/, bounding_box_test/."""
    for split, names in (("train", train), ("query", query), ("gallery", gallery)):
        folder = root / MARKET_FOLDERS[split]
        folder.mkdir(parents=True, exist_ok=True)
        write_images(folder, names)
    return root


def write_msmt_layout(root: Path, version: str, lists: dict[str, Sequence[tuple[str, int]]]) -> Path:
    """MSMT17 layout: lists maps 'train' / 'val' / 'query' / 'gallery' to (relative path, label) entries.

    Each list file is written and its images created under the train folder (train, val) or the test folder.
    """
    train_folder, test_folder = MSMT_FOLDERS[version]
    for split, entries in lists.items():
        image_folder = root / (train_folder if split in ("train", "val") else test_folder)
        image_folder.mkdir(parents=True, exist_ok=True)
        write_images(image_folder, [relative for relative, _ in entries])
        lines = "".join(f"{relative} {label}\n" for relative, label in entries)
        (root / MSMT_LISTS[split]).write_text(lines)
    return root


# A tiny Market-1501: 2 train ids (plus one junk and one train distractor, both dropped), 2 query images,
# 4 gallery images kept (2 true matches, 2 distractors) and 2 junk dropped. Names deliberately unsorted.
MARKET_TRAIN = [
    "0007_c3s1_000101_02.jpg",
    "0002_c1s1_000451_03.jpg",
    "-1_c1s1_000001_00.jpg",
    "0002_c2s1_000301_01.jpg",
    "0000_c1s1_000002_00.jpg",
]
MARKET_QUERY = ["0007_c5s1_000001_01.jpg", "0002_c6s1_000001_01.jpg"]
MARKET_GALLERY = [
    "0002_c4s1_000011_01.jpg",
    "-1_c1s1_000021_00.jpg",
    "0000_c2s1_000031_00.jpg",
    "0007_c1s1_000041_01.jpg",
    "-1_c4s1_000051_00.jpg",
    "0000_c3s1_000061_00.jpg",
]

# A tiny DukeMTMC-reID, cameras up to 8.
DUKE_TRAIN = ["0005_c2_f0046985.jpg", "0005_c8_f0051234.jpg", "0012_c1_f0000100.jpg"]
DUKE_QUERY = ["0005_c7_f0047000.jpg"]
DUKE_GALLERY = ["0005_c3_f0046000.jpg", "0000_c4_f0001000.jpg"]

# A tiny MSMT17: list labels 0..2 in train/val (one id only in val), 0..1 in query/gallery, cameras up to 15.
MSMT_ENTRIES = {
    "train": [
        ("0000/0000_000_01_0303morning_0015_0.jpg", 0),
        ("0000/0000_001_05_0303morning_0016_0.jpg", 0),
        ("0001/0001_000_15_0303noon_0001_1.jpg", 1),
    ],
    "val": [("0000/0000_002_03_0303morning_0020_0.jpg", 0), ("0002/0002_000_07_0304noon_0003_0.jpg", 2)],
    "query": [("0001/0001_000_09_0113morning_0001_0.jpg", 1), ("0000/0000_000_02_0113morning_0002_0.jpg", 0)],
    "gallery": [
        ("0000/0000_001_04_0113noon_0003_0.jpg", 0),
        ("0001/0001_001_11_0113noon_0004_0.jpg", 1),
        ("0001/0001_002_14_0114noon_0005_0.jpg", 1),
    ],
}
