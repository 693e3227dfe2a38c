"""The training augmentation: output format, reproducibility, pad rule, random-erasing fill."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from canu_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_train_transform, scaled_pad


def random_image(height: int = 100, width: int = 50) -> Image.Image:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator)
    return Image.fromarray(pixels.numpy())


def test_output_is_a_normalised_float_tensor_of_the_network_size():
    out = build_train_transform(64, 32)(random_image())
    assert out.shape == (3, 64, 32) and out.dtype == torch.float32


def test_reproducible_under_torch_manual_seed():
    transform, image = build_train_transform(64, 32), random_image()
    torch.manual_seed(3)
    first = transform(image)
    torch.manual_seed(3)
    assert torch.equal(transform(image), first)
    torch.manual_seed(4)
    assert not torch.equal(transform(image), first)


@pytest.mark.parametrize("height, pad", [(256, 10), (128, 5), (64, 3), (32, 1), (8, 1)])
def test_pad_scales_with_height(height, pad):
    # 10 * h / 256 = 10, 5, 2.5 (half up -> 3), 1.25, 0.31 (floor at 1)
    assert scaled_pad(height) == pad


def test_steps_follow_the_options():
    default = [type(step) for step in build_train_transform(64, 32).transforms]
    assert default == [T.Resize, T.RandomHorizontalFlip, T.Pad, T.RandomCrop, T.ToTensor, T.Normalize, T.RandomErasing]
    assert build_train_transform(64, 32).transforms[2].padding == 3
    assert build_train_transform(64, 32, pad=7).transforms[2].padding == 7
    bare = [type(step) for step in build_train_transform(64, 32, flip=False, pad=0, erasing_p=0).transforms]
    assert bare == [T.Resize, T.ToTensor, T.Normalize]


def test_erased_pixels_hold_the_imagenet_mean_values():
    black = Image.new("RGB", (32, 64))
    torch.manual_seed(0)
    out = build_train_transform(64, 32, flip=False, pad=0, erasing_p=1.0)(black)
    fill = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    normalised_black = (-torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)).view(3, 1, 1)
    erased = torch.isclose(out, fill).all(dim=0)
    untouched = torch.isclose(out, normalised_black).all(dim=0)
    assert erased.any() and (erased | untouched).all()
