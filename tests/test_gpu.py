"""The CUDA paths, where a GPU is present: a pretraining and a CANU-MMT run with mixed precision (float16 with its
loss scale; bfloat16 in channels_last) on the tiny worlds, the evaluation on the GPU, DBSCAN's neighbour search on
the GPU against the CPU's, and one run on 2 GPUs with nccl, with and without SyncBatchNorm. Elsewhere each test is
skipped, saying why: these paths need the hardware; tests/test_gpu_ready.py covers what of them runs on a CPU."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from canu_core.cli import main
from canu_core.cluster.pseudo_labels import DBSCANClustering
from canu_core.runs import RunFolder, project_root

SMOKE = str(project_root() / "params" / "smoke.yaml")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
needs_two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="fewer than 2 CUDA devices here")
needs_bfloat16 = pytest.mark.skipif(
    not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()), reason="no CUDA device with bfloat16 here"
)


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


@needs_bfloat16
def test_pretraining_and_canu_mmt_in_bfloat16_and_channels_last_on_cuda(tiny_data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CANU_OUTPUTS", str(tmp_path))
    common = {"data_root": str(tiny_data_root), "device": "cuda", "amp_dtype": "bfloat16", "channels_last": "true"}
    assert main(["run", "01_pretrain", "-f", SMOKE, *flags({**common, "run_name": "bf16_source"})]) == 0
    adapt = {**common, "run_name": "bf16_canu", "pretrain_run": "bf16_source", "adversary": "canu"}
    assert main(["run", "03_train", "-f", SMOKE, *flags(adapt)]) == 0
    history = RunFolder(tmp_path / "bf16_canu").read_history()
    assert history["target_mAP"].between(0, 100).all() and history["loss"].notna().all()
    assert RunFolder(tmp_path / "bf16_canu").load_checkpoint("mmt_state")["scaler"] == {}  # bfloat16: unscaled


@needs_gpu
def test_dbscan_on_the_gpu_finds_the_cpu_clusters():
    """Well-separated groups: the GPU's topk search and the CPU's heaps give the same lists, hence the same labels."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(40, 64, generator=generator)
    features = centres.repeat_interleave(8, dim=0) + 0.05 * torch.randn(320, 64, generator=generator)
    labels = {device: DBSCANClustering(eps=0.5, k1=10, device=device)(features).labels for device in ("cpu", "cuda")}
    np.testing.assert_array_equal(labels["cuda"], labels["cpu"])
    assert len(set(labels["cpu"]) - {-1}) == 40


@needs_two_gpus
@pytest.mark.parametrize("sync_bn", ["false", "true"])
def test_one_run_on_two_gpus_with_nccl(tiny_data_root, tmp_path, sync_bn):
    parameters = {"data_root": str(tiny_data_root), "device": "cuda", "run_name": "gpu2", "sync_bn": sync_bn}
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
