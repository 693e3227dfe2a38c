"""Readers for the real re-ID datasets (Market-1501, DukeMTMC-reID, MSMT17) and any folder in Market naming.

Readers never open images; they parse names and list files, check the layout, and fail loudly on anything they
cannot account for. Only the protocol's junk images (pid -1) are dropped, plus distractors (pid 0) from train.
Record paths are absolute; every split is sorted by path, so results do not depend on the file system's order.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from .records import ImageRecord, ReidDataset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
JUNK_PID = -1
DISTRACTOR_PID = 0
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
MARKET_NAME = re.compile(r"([-\d]+)_c(\d+)")
MSMT_FOLDERS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}
MSMT_LISTS = {
    "train": "list_train.txt",
    "val": "list_val.txt",
    "query": "list_query.txt",
    "gallery": "list_gallery.txt",
}
# MSMT17 labels start at 0 for a real person, while records reserve pid 0 for distractors: shift every label by one.
MSMT_PID_OFFSET = 1
MAX_EXAMPLES = 5


class DatasetLayoutError(ValueError):
    """The folder does not hold the expected dataset layout, or holds names / list lines that do not parse."""


def _describe_root(root: Path, limit: int = 20) -> str:
    """What is actually in root, for error messages (folders end with '/')."""
    if not root.is_dir():
        return f"{root} does not exist or is not a folder"
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    if not entries:
        return f"{root} is empty"
    shown = ", ".join(entries[:limit])
    more = f" ... and {len(entries) - limit} more" if len(entries) > limit else ""
    return f"found in {root}: {shown}{more}"


def _examples(items: list[str]) -> str:
    """'N in all, e.g. a, b, c' with at most MAX_EXAMPLES examples."""
    return f"{len(items)} in all, e.g. " + ", ".join(items[:MAX_EXAMPLES])


def _require(root: Path, folders: Iterable[str], files: Iterable[str], layout: str) -> None:
    """Raise naming every expected folder / file and what root holds, if any of them is missing."""
    missing = [f + "/" for f in folders if not (root / f).is_dir()]
    missing += [f for f in files if not (root / f).is_file()]
    if missing:
        raise DatasetLayoutError(f"{layout} layout expected, missing: {', '.join(missing)}; {_describe_root(root)}")


def _count_cameras(*splits: list[ImageRecord]) -> int:
    """Number of cameras as read from the data: highest 0-based camid + 1 (a camera with no image still counts)."""
    return 1 + max((r.camid for records in splits for r in records), default=-1)


# ---------------------------------------------------------------- Market naming (Market-1501, Duke, synthetic)


def _parse_market_name(file_name: str) -> tuple[int, int] | None:
    """(pid, 0-based camid) from a name like 0002_c1s1_000451_03.jpg, or None if it does not parse."""
    match = MARKET_NAME.match(file_name)
    if match is None:
        return None
    pid_text, camera_text = match.groups()
    if not re.fullmatch(r"-1|\d+", pid_text) or int(camera_text) < 1:
        return None
    return int(pid_text), int(camera_text) - 1


def _read_market_folder(folder: Path) -> tuple[list[ImageRecord], list[str]]:
    """Records of every image file in folder (sorted by name), and the names that do not parse."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise DatasetLayoutError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    records, bad_names = [], []
    for file_name in names:
        parsed = _parse_market_name(file_name)
        if parsed is None:
            bad_names.append(f"{folder.name}/{file_name}")
        else:
            records.append(ImageRecord(str(folder / file_name), *parsed))
    return records, bad_names


def read_market_style(root: str | Path, name: str) -> ReidDataset:
    """Any dataset in Market-1501's layout and naming; the number of cameras is read from the data.

    Junk (pid -1) is dropped from every split, distractors (pid 0) from train only: they stay gallery negatives.
    extra holds root and how many images each rule dropped.
    """
    root = Path(root).expanduser().absolute()
    _require(root, MARKET_FOLDERS.values(), (), f"{name} (Market-style)")
    splits, bad_names = {}, []
    for split, folder in MARKET_FOLDERS.items():
        splits[split], bad = _read_market_folder(root / folder)
        bad_names += bad
    if bad_names:
        raise DatasetLayoutError(
            f"file names that do not parse as <pid>_c<camera>... (pid -1 or >= 0, camera >= 1): {_examples(bad_names)}"
        )
    dropped_junk = {split: sum(r.pid == JUNK_PID for r in records) for split, records in splits.items()}
    dropped_train_distractors = sum(r.pid == DISTRACTOR_PID for r in splits["train"])
    splits = {split: [r for r in records if r.pid != JUNK_PID] for split, records in splits.items()}
    splits["train"] = [r for r in splits["train"] if r.pid != DISTRACTOR_PID]
    return ReidDataset(
        name=name,
        **splits,
        num_cameras=_count_cameras(*splits.values()),
        extra={"root": str(root), "dropped_junk": dropped_junk, "dropped_train_distractors": dropped_train_distractors},
    )


def read_market1501(root: str | Path, name: str = "market1501") -> ReidDataset:
    """Market-1501 (cameras 1-6): bounding_box_train/, bounding_box_test/, query/."""
    return read_market_style(root, name)


def read_dukemtmc(root: str | Path) -> ReidDataset:
    """DukeMTMC-reID (cameras 1-8): Market's folders, names like 0005_c2_f0046985.jpg."""
    return read_market_style(root, "dukemtmc")


# ---------------------------------------------------------------- MSMT17


def _detect_msmt_version(root: Path) -> str:
    """'V1' or 'V2' from the image folders present; raise if neither or both are there."""
    present = [v for v, folders in MSMT_FOLDERS.items() if any((root / f).is_dir() for f in folders)]
    if len(present) == 1:
        return present[0]
    expected = " or ".join(f"{v}: {'/, '.join(folders)}/" for v, folders in MSMT_FOLDERS.items())
    problem = "both V1 and V2 folders are present; pass version='V1' or 'V2'" if present else "no image folders"
    raise DatasetLayoutError(f"MSMT17 layout expected ({expected}): {problem}; {_describe_root(root)}")


def _msmt_camid(relative_path: str) -> int | None:
    """0-based camera from the third underscore field of the file name (0000_000_01_... -> 0), or None."""
    fields = PurePosixPath(relative_path).name.split("_")
    if len(fields) < 3 or not fields[2].isdigit() or int(fields[2]) < 1:
        return None
    return int(fields[2]) - 1


def _read_msmt_list(list_path: Path, image_dir: Path) -> list[ImageRecord]:
    """Records of one list file ('<relative path> <label>' per line); raise on unparsable lines or missing files."""
    records, bad_lines, missing = [], [], []
    for line_number, line in enumerate(list_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        camid = _msmt_camid(fields[0]) if len(fields) == 2 else None
        if camid is None or not fields[1].isdigit():
            bad_lines.append(f"line {line_number}: {line.strip()!r}")
            continue
        path = image_dir / fields[0]
        if not path.is_file():
            missing.append(str(path))
        records.append(ImageRecord(str(path), int(fields[1]) + MSMT_PID_OFFSET, camid))
    if bad_lines:
        raise DatasetLayoutError(
            f"{list_path}: lines that do not parse as '<dir>/<pid>_<n>_<camera>_....jpg <label>': "
            f"{_examples(bad_lines)}"
        )
    if missing:
        raise DatasetLayoutError(f"{list_path} lists files missing on disk: {_examples(missing)}")
    return records


def read_msmt17(root: str | Path, version: str = "auto", combine_trainval: bool = True) -> ReidDataset:
    """MSMT17 V1 (train/, test/) or V2 (mask_train_v2/, mask_test_v2/), with list_{train,val,query,gallery}.txt.

    Train and val lists share one id space (val holds other images of train identities), so train+val is a plain
    concatenation: 32,621 images / 1,041 ids, as in torchreid and MMT. Labels are shifted by MSMT_PID_OFFSET so that
    pid 0 keeps meaning 'distractor' (MSMT17 has none). Cameras 01-15 -> camid 0-14; num_cameras is read from the data.
    """
    root = Path(root).expanduser().absolute()
    if version == "auto":
        version = _detect_msmt_version(root)
    if version not in MSMT_FOLDERS:
        raise ValueError(f"MSMT17 version must be 'auto', 'V1' or 'V2', got {version!r}")
    train_folder, test_folder = MSMT_FOLDERS[version]
    list_names = [name for split, name in MSMT_LISTS.items() if combine_trainval or split != "val"]
    _require(root, (train_folder, test_folder), list_names, f"MSMT17 {version}")

    def read(split: str, image_folder: str) -> list[ImageRecord]:
        return _read_msmt_list(root / MSMT_LISTS[split], root / image_folder)

    val = read("val", train_folder) if combine_trainval else []
    train = sorted(read("train", train_folder) + val)
    query, gallery = sorted(read("query", test_folder)), sorted(read("gallery", test_folder))
    return ReidDataset(
        name="msmt17",
        train=train,
        query=query,
        gallery=gallery,
        num_cameras=_count_cameras(train, query, gallery),
        extra={
            "root": str(root),
            "version": version,
            "combine_trainval": combine_trainval,
            "val_images": len(val),
            "pid_offset": MSMT_PID_OFFSET,
        },
    )


# ---------------------------------------------------------------- dispatch

READERS: dict[str, Callable[..., ReidDataset]] = {
    "market1501": read_market1501,
    "dukemtmc": read_dukemtmc,
    "msmt17": read_msmt17,
    "market_style": read_market_style,
}


def read_dataset(name: str, root: str | Path, /, **options) -> ReidDataset:
    """Read dataset `name` from root; options go to its reader (e.g. read_dataset('market_style', r, name='x'))."""
    if name not in READERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(READERS)}")
    return READERS[name](root, **options)
