"""Training images per second on the device at hand: a supervised step (cross-entropy + soft-margin triplet,
Adam, as source pretraining) of the synthetic default's network (compact IBN, 64 x 32) and of IBN-ResNet-50-a at
the paper's 256 x 128, batch 64 (16 identities x 4), on random images; on CUDA with mixed precision on and off.

    .venv/bin/python benchmarks/bench_train.py [--steps 20] [--device auto]

On this project's 2-core CPU machine it is a smoke run (a few steps; IBN-ResNet-50-a at 256 x 128 takes seconds per
step); its numbers say how far a CPU is from what the paper's schedule needs. With a GPU the AMP row is the one
that matters.
"""

from __future__ import annotations

import argparse
import time

import torch

from canu_core.device import resolve_device
from canu_core.losses import CrossEntropyLabelSmooth, TripletLoss
from canu_core.models import build_model

SETTINGS = (("compact_ibn", 64, 32), ("ibn_resnet50a", 256, 128))
BATCH_IDS, INSTANCES, CLASSES = 16, 4, 751  # Market-1501's training identities
WARMUP = 2


def images_per_second(arch: str, height: int, width: int, device: torch.device, amp: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=CLASSES).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.00035)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
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
        with torch.autocast(device_type=device.type, enabled=amp):
            features, logits = model(images)
        loss = ce(logits.float(), labels) + triplet(features.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started)


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
        precisions = (False, True) if device.type == "cuda" else (False,)  # mixed precision runs on CUDA only
        rates = {amp: images_per_second(arch, height, width, device, amp, steps) for amp in precisions}
        line = f"{arch} {height}x{width}: {rates[False]:.1f} fp32"
        if device.type == "cuda":
            line += f", {rates[True]:.1f} with AMP (fp16): {rates[True] / rates[False]:.2f}x"
        print(line + f" ({steps} timed steps)")


if __name__ == "__main__":
    main()
