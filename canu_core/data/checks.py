"""Checks run when a dataset is read, so that a bad image file or a test split that cannot be evaluated fails at
once, naming what to fix, rather than in the middle of training or after a whole epoch.

Image files are checked from their first and last bytes and their header, without decoding a pixel: about 0.3 s
per 10,000 files in the OS cache, so even MSMT17's 126,000 images are checked on every read.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Sequence

from PIL import Image
from tqdm.auto import tqdm

from .datasets import JUNK_PID
from .records import ImageRecord, ReidDataset

JPEG_START = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"  # EOI marker
PNG_START = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty IEND chunk: length, type, CRC
BMP_START = b"BM"
PIL_FORMATS = ("JPEG", "PNG", "BMP")
HEAD_BYTES = 16
# Bytes read from a file's end: its last chunk or marker plus the few padding bytes some writers add after it.
TAIL_BYTES = 32
PADDING = b"\x00 \t\r\n"
PROGRESS_BAR_FILES = 20_000
MAX_LISTED = 10


class BadImageFilesError(OSError):
    """Image files of a dataset that are missing, empty, not images, or truncated."""


class UnevaluableSplitError(ValueError):
    """No query of the test split has a true match (same identity, another camera) in the gallery."""


def image_file_problem(path: str) -> str | None:
    """Why the image file at `path` cannot be decoded (missing, empty, not a JPEG / PNG / BMP, truncated), or
    None if its first and last bytes look right and PIL reads its header."""
    try:
        with open(path, "rb") as file:
            return _open_file_problem(file)
    except FileNotFoundError:
        return "file not found"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"


def _open_file_problem(file: BinaryIO) -> str | None:
    """image_file_problem of an open file: its size, first and last bytes, then PIL's parse of its header."""
    size = os.fstat(file.fileno()).st_size
    if size == 0:
        return "empty file (0 bytes)"
    head = file.read(HEAD_BYTES)
    file.seek(max(size - TAIL_BYTES, 0))
    tail = file.read().rstrip(PADDING)
    if head.startswith(JPEG_START):
        if not tail.endswith(JPEG_END):
            return "truncated JPEG (no end-of-image marker FF D9 at its end)"
    elif head.startswith(PNG_START):
        if not tail.endswith(PNG_END):
            return "truncated PNG (no IEND chunk at its end)"
    elif head.startswith(BMP_START):
        declared = int.from_bytes(head[2:6], "little")
        if size < declared:
            return f"truncated BMP ({size} bytes, its header says {declared})"
    else:
        return f"not a JPEG, PNG or BMP file (it starts with {head[:8]!r})"
    file.seek(0)
    try:
        Image.open(file, formats=PIL_FORMATS)
    except OSError:
        return "its header cannot be read by PIL"
    return None


def check_image_files(records: Sequence[ImageRecord]) -> None:
    """Raise BadImageFilesError listing the bad files among `records` (see image_file_problem) and their count."""
    paths = [record.path for record in records]
    progress = tqdm(paths, desc="checking image files", unit="file", disable=len(paths) <= PROGRESS_BAR_FILES)
    problems = [(path, problem) for path in progress if (problem := image_file_problem(path)) is not None]
    if problems:
        listed = "; ".join(f"{path}: {problem}" for path, problem in problems[:MAX_LISTED])
        more = f"; ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise BadImageFilesError(
            f"{len(problems)} of {len(paths)} image files cannot be read: {listed}{more}. Replace these files or "
            "remove them from the dataset folder."
        )


def check_evaluable(dataset: ReidDataset) -> None:
    """Raise UnevaluableSplitError if no query has a true match under the Market-1501 protocol (a gallery image
    of its pid from another camera, junk pid -1 excluded, as canu_core.evaluation ranks), which evaluation would
    otherwise report only after a whole epoch."""
    gallery_cameras: dict[int, set[int]] = {}
    for record in dataset.gallery:
        if record.pid != JUNK_PID:
            gallery_cameras.setdefault(record.pid, set()).add(record.camid)
    if any(gallery_cameras.get(q.pid, set()) - {q.camid} for q in dataset.query):
        return
    folder = dataset.extra.get("root", dataset.name)
    raise UnevaluableSplitError(
        f"the test split of {folder} cannot be evaluated: no query has a gallery image of the same identity from "
        f"another camera (query cameras: {_cameras(dataset.query)}; gallery cameras: {_cameras(dataset.gallery)}). "
        "The test split needs identities seen by at least two cameras (a query image in one, a gallery image in "
        "another)."
    )


def _cameras(records: Sequence[ImageRecord]) -> str:
    """The cameras of records as in file names (c1, c2, ...), or 'none'."""
    return ", ".join(f"c{camid + 1}" for camid in sorted({r.camid for r in records})) or "none"
