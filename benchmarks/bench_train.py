"""Training images per second on the device at hand: a supervised step (cross-entropy + soft-margin triplet,
Adam, as source pretraining) of the synthetic default's network (compact IBN, 64 x 32) and of IBN-ResNet-50-a at
the paper's 256 x 128, batch 64 (16 identities x 4), on random images: in float32, in channels_last, and on CUDA
with mixed precision (float16 with its loss scale, bfloat16 where the GPU has it), alone and with channels_last.

    .venv/bin/python benchmarks/bench_train.py [--steps 20] [--device auto]

On this project's 2-core CPU machine it is a smoke run (a few steps; IBN-ResNet-50-a at 256 x 128 takes seconds per
step); its numbers say how far a CPU is from what the paper's schedule needs. With a GPU the mixed-precision rows
are the ones that matter: each is printed as a ratio to float32 in the same run.
"""

from __future__ import annotations

import argparse
import time

import torch

from canu_core.device import resolve_device
from canu_core.engine import MixedPrecision
from canu_core.losses import CrossEntropyLabelSmooth, TripletLoss
from canu_core.models import build_model

SETTINGS = (("compact_ibn", 64, 32), ("ibn_resnet50a", 256, 128))
BATCH_IDS, INSTANCES, CLASSES = 16, 4, 751  # Market-1501's training identities
WARMUP = 2


def images_per_second(
    arch: str, height: int, width: int, device: torch.device, precision: MixedPrecision, channels_last: bool, steps: int
) -> float:
    """The trainers' step (MixedPrecision's autocast and step, a channels_last model as prepare_model makes it)."""
    torch.manual_seed(0)
    model = build_model(arch, num_classes=CLASSES).to(device).train()
    if channels_last:
        model.use_channels_last()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.00035)
    ce, triplet = CrossEntropyLabelSmooth(CLASSES), TripletLoss(None)
    batch = BATCH_IDS * INSTANCES
    images = torch.randn(batch, 3, height, width, device=device)
    labels = torch.arange(BATCH_IDS, device=device).repeat_interleave(INSTANCES)
    started = 0.0
    for step in range(WARMUP + steps):
        if step == WARMUP:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        with precision.autocast():
            features, logits = model(images)
        precision.step(ce(logits.float(), labels) + triplet(features.float(), labels), optimizer)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started)


def precisions(device: torch.device) -> dict[str, MixedPrecision]:
    """float32 everywhere; on CUDA also the two mixed precisions the trainers run (amp_dtype)."""
    rows = {"fp32": MixedPrecision(False, torch.float32, device.type)}
    if device.type == "cuda":
        rows["fp16"] = MixedPrecision(True, torch.float16, device.type)
        if torch.cuda.is_bf16_supported():
            rows["bf16"] = MixedPrecision(True, torch.bfloat16, device.type)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"training images/s, batch {BATCH_IDS} x {INSTANCES}, on {name}")
    for arch, height, width in SETTINGS:
        steps = args.steps if device.type == "cuda" or arch.startswith("compact") else max(1, args.steps // 10)
        rates = {
            (label, channels_last): images_per_second(arch, height, width, device, precision, channels_last, steps)
            for label, precision in precisions(device).items()
            for channels_last in (False, True)
        }
        baseline = rates[("fp32", False)]
        cells = [
            f"{label}{' channels_last' if channels_last else ''} {rate:.1f} ({rate / baseline:.2f}x)"
            for (label, channels_last), rate in rates.items()
        ]
        print(f"{arch} {height}x{width}, {steps} timed steps: " + ", ".join(cells))


if __name__ == "__main__":
    main()
