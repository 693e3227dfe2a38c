"""A torch Dataset over ImageRecords. Decoded images are cached per file for the whole process: the synthetic
worlds fit in memory, and training evaluates the same test images after every epoch."""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

from PIL import Image
from torch.utils.data import Dataset

from .checks import image_file_problem
from .records import ImageRecord

# About 25 KB per 128x64 RGB image: 60,000 images stay under 1.5 GB. Real datasets beyond that are read again.
CACHED_IMAGES = 60_000


class ImageFileError(OSError):
    """An image file that cannot be decoded; the message names it, the cause and what to do."""


@lru_cache(maxsize=CACHED_IMAGES)
def load_image(path: str) -> Image.Image:
    """The RGB image at `path`, decoded once (transforms never modify PIL images in place). A file that cannot be
    decoded raises ImageFileError: PIL's own errors name neither the file nor the fix, and surface mid-training."""
    try:
        with Image.open(path) as f:
            return f.convert("RGB")
    except (OSError, SyntaxError) as error:
        cause = image_file_problem(path) or str(error)
        raise ImageFileError(
            f"cannot decode image {path}: {cause}. Replace the file or remove it from the dataset folder."
        ) from error


class ImageDataset(Dataset):
    """Yields (image, pid, camid, index) with `transform` applied to the decoded image."""

    def __init__(self, records: Sequence[ImageRecord], transform: Callable | None = None):
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        image = load_image(record.path)
        if self.transform is not None:
            image = self.transform(image)
        return image, record.pid, record.camid, index
