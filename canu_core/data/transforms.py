"""Image transforms: the deterministic test transform; training augmentation lives beside it."""

from __future__ import annotations

import torchvision.transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_test_transform(height: int, width: int) -> T.Compose:
    """Resize to the network's input size and normalise with ImageNet statistics (as MMT / torchreid)."""
    return T.Compose(
        [
            T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def scaled_pad(height: int) -> int:
    """The 10-pixel pad of MMT / torchreid at 256x128, scaled to the input height: 10 * height / 256 rounded half
    up (64 -> 3, not Python's round-half-even 2), at least 1."""
    return max(1, int(10 * height / 256 + 0.5))


def build_train_transform(
    height: int, width: int, flip: bool = True, pad: int | None = None, erasing_p: float = 0.5
) -> T.Compose:
    """MMT's training augmentation: resize, horizontal flip, pad + random crop, normalise, random erasing.

    pad=None scales MMT's 10 px to the input size (scaled_pad); pad=0 disables pad + crop. Random erasing follows
    MMT / torchreid: area 2-40% of the image, aspect 0.3-3.3, filled with the ImageNet mean values; like them it
    runs after normalisation, so the fill is those values in normalised units. All randomness comes from torch's
    generator (reproducible under torch.manual_seed).
    """
    pad = scaled_pad(height) if pad is None else pad
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    steps = [T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR)]
    if flip:
        steps.append(T.RandomHorizontalFlip(p=0.5))
    if pad:
        steps += [T.Pad(pad), T.RandomCrop((height, width))]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if erasing_p > 0:
        steps.append(T.RandomErasing(p=erasing_p, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3), value=IMAGENET_MEAN))
    return T.Compose(steps)
