"""`device: cuda` where CUDA cannot be had: the error says what is missing (a CPU build of torch, no visible GPU,
a GPU index past the count), whatever this machine has."""

import pytest
import torch

from canu_core.device import resolve_device


def test_a_cpu_build_of_torch_is_named(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(RuntimeError, match=r"CUDA is not available here: this torch \(.*\) was built without CUDA"):
        resolve_device("cuda")


def test_no_visible_gpu_points_at_the_driver_and_the_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RuntimeError, match=r"finds no GPU \(CUDA_VISIBLE_DEVICES='' hides them\?\).*nvidia-smi"):
        resolve_device("cuda:0")


def test_a_gpu_index_past_the_count_is_refused(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(RuntimeError, match=r"there are 2 GPU\(s\) here \(cuda:0 to cuda:1\), not cuda:3"):
        resolve_device("cuda:3")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
