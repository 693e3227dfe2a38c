"""The CUDA paths, where a GPU is present: a pretraining and a CANU-MMT run with mixed precision on the tiny worlds,
the evaluation on the GPU, and one run on 2 GPUs with nccl. Elsewhere each test is skipped, saying why: these
paths need the hardware, and the CPU tests cover the same code without it."""

import os
import subprocess
import sys

import pytest
import torch

from canu_core.cli import main
from canu_core.runs import RunFolder, project_root

SMOKE = str(project_root() / "params" / "smoke.yaml")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
needs_two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="fewer than 2 CUDA devices here")


def flags(parameters: dict) -> list[str]:
    return [str(item) for name, value in parameters.items() for item in ("-p", name, value)]


@needs_gpu
def test_pretraining_and_canu_mmt_with_mixed_precision_on_cuda(tiny_data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CANU_OUTPUTS", str(tmp_path))
    common = {"data_root": str(tiny_data_root), "device": "cuda", "amp": "true"}
    assert main(["run", "01_pretrain", "-f", SMOKE, *flags({**common, "run_name": "gpu_source"})]) == 0
    adapt = {**common, "run_name": "gpu_canu", "pretrain_run": "gpu_source", "adversary": "canu"}
    assert main(["run", "03_train", "-f", SMOKE, *flags(adapt)]) == 0
    history = RunFolder(tmp_path / "gpu_canu").read_history()
    assert history["target_mAP"].between(0, 100).all() and history["loss"].notna().all()
    state = RunFolder(tmp_path / "gpu_canu").load_checkpoint("mmt_state")
    assert state["scaler"]["scale"] > 0  # the GradScaler ran (fp16)


@needs_two_gpus
def test_one_run_on_two_gpus_with_nccl(tiny_data_root, tmp_path):
    parameters = {"data_root": str(tiny_data_root), "device": "cuda", "run_name": "gpu2"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "canu_core", "run", "01_pretrain", "-f", SMOKE, *flags(parameters)]
    done = subprocess.run(
        command,
        env={**os.environ, "CANU_OUTPUTS": str(tmp_path)},
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert RunFolder(tmp_path / "gpu2").read_metrics()["processes"] == 2
