"""Training images per second of one run on 1 and on N processes (torchrun, DistributedDataParallel; gloo on the
CPU, nccl on CUDA), at the same global P x K batch: source pretraining steps of the synthetic default's network
(compact IBN, 64 x 32) on the synthetic source world, the first steps (graph building, worker start) not timed.

    .venv/bin/python benchmarks/bench_ddp.py [--nproc 2] [--steps 30] [--data-root data]

On the 2-core CPU machine each process gets one thread (2 processes x 1 thread against 1 process x 2 threads): the
question is whether splitting the batch costs more in gradient all-reduce than it gains in parallel work. With GPUs,
one process per GPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 5


def measure(steps: int, data_root: str, threads: int) -> None:
    """Run inside torchrun: time `steps` pretraining steps after WARMUP; rank 0 prints images/s."""
    import torch

    from canu_core import distributed, load_dataset
    from canu_core.config import make_params
    from canu_core.device import resolve_device
    from canu_core.engine import PretrainTrainer
    from canu_core.reproducibility import set_threads

    set_threads(threads)
    device = distributed.local_device(resolve_device("auto"))
    group = distributed.start(device)
    params = make_params({"data_root": data_root, "iters_per_epoch": WARMUP + steps, "pretrain_target_forward": False})
    source = load_dataset(params.source, params.data_root, params.world_seed)
    target = load_dataset(params.target, params.data_root, params.world_seed)
    trainer = PretrainTrainer(params, source, target, index=1, seed=0)
    timings = []

    def step_hook(*_):
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter())

    trainer.optimizer.register_step_post_hook(step_hook)
    trainer.train_epoch(0)
    if group.main:
        seconds = timings[-1] - timings[WARMUP - 1]
        images = steps * params.batch_ids * params.instances
        print(f"RESULT {group.world_size} {images / seconds:.1f}")
    distributed.barrier()


def launch(nproc: int, steps: int, data_root: str, threads: int) -> float:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        __file__,
        "--measure",
        "--steps",
        str(steps),
        "--data-root",
        data_root,
        "--threads",
        str(threads),
    ]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    return float(line.split()[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--data-root", default=str(ROOT / "data"))
    parser.add_argument("--threads", type=int, default=0, help="per process (0: the CPU count divided by nproc)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.steps, args.data_root, args.threads)
        return
    cores = os.cpu_count() or 1
    rates = {}
    for nproc in (1, args.nproc):
        threads = args.threads or max(1, cores // nproc)
        rates[nproc] = launch(nproc, args.steps, args.data_root, threads)
        print(f"{nproc} process(es) x {threads} thread(s): {rates[nproc]:.1f} training images/s")
    print(f"{args.nproc} processes / 1 process: {rates[args.nproc] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
