"""A torch Dataset over ImageRecords: decoded images are cached, since the synthetic worlds fit in memory."""
from __future__ import annotations

from typing import Callable, Sequence

from PIL import Image
from torch.utils.data import Dataset

from .records import ImageRecord


class ImageDataset(Dataset):
    """Yields (image, pid, camid, index); `cache=True` keeps decoded RGB images so each file is read once."""

    def __init__(self, records: Sequence[ImageRecord], transform: Callable | None = None, cache: bool = True):
        self.records = list(records)
        self.transform = transform
        self._cache: dict[int, Image.Image] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> Image.Image:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        with Image.open(self.records[index].path) as f:
            image = f.convert("RGB")
        if self._cache is not None:
            self._cache[index] = image
        return image

    def __getitem__(self, index: int):
        image = self.load(index)
        if self.transform is not None:
            image = self.transform(image)
        record = self.records[index]
        return image, record.pid, record.camid, index
