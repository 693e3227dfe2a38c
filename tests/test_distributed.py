"""One run across two CPU processes: `torchrun --nproc_per_node 2 -m canu_core run ...` (DistributedDataParallel,
gloo) on the tiny worlds. The trainers check after every epoch that every rank holds rank 0's weights and buffers
bit for bit, and the pseudo-labels rank 0 made (`distributed.check_same_on_every_rank`, which raises otherwise):
a 2-process run that finishes passed those checks at every epoch."""

import os
import subprocess
import sys
import textwrap
import time

import pandas as pd
import psutil
import pytest
import torch
import torch.distributed as dist
from torch import nn

from canu_core import distributed
from canu_core.cli import main
from canu_core.config import make_params
from canu_core.distributed import ShardedBatches
from canu_core.engine.common import prepare_model
from canu_core.models import build_model
from canu_core.notebook import run_notebook
from canu_core.runs import RunFolder, project_root

ROOT = project_root()
SMOKE = str(ROOT / "params" / "smoke.yaml")
pytestmark = pytest.mark.notebook


def torchrun_command(nproc: int, job: str, parameters: dict) -> list[str]:
    """torchrun on this machine only: a static rendezvous on 127.0.0.1 at a port the OS picks (port 0 is taken by
    --standalone)."""
    flags = [item for name, value in parameters.items() for item in ("-p", name, str(value))]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "canu_core",
        "run",
        job,
        "-f",
        SMOKE,
        *flags,
    ]


def environment(outputs) -> dict:
    # gloo on the loopback interface only, one thread per process (2 processes on the 2-core machine)
    return {**os.environ, "CANU_OUTPUTS": str(outputs), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}


def torchrun(nproc: int, job: str, outputs, **parameters) -> subprocess.CompletedProcess:
    done = subprocess.run(
        torchrun_command(nproc, job, parameters),
        env=environment(outputs),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def tiny(data_root, **parameters) -> dict:
    return {"data_root": str(data_root), "device": "cpu", "threads": 1, **parameters}


@pytest.fixture(scope="module")
def two_process_pretraining(tiny_data_root, tmp_path_factory):
    """Notebook 01's training on 2 processes (2 source models x 2 epochs), the run 03_train adapts from: `run
    01_pretrain -p nproc 2`, which launches torchrun itself (the tests below also launch it by hand)."""
    outputs = tmp_path_factory.mktemp("outputs")
    parameters = tiny(tiny_data_root, run_name="source2", nproc=2)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment(outputs).items():
            patch.setenv(name, value)
        assert (
            main(["run", "01_pretrain", "-f", SMOKE, *[str(i) for k, v in parameters.items() for i in ("-p", k, v)]])
            == 0
        )
    return outputs


def test_sharded_batches_split_each_global_batch_between_the_ranks():
    stream = list(range(10))  # two global batches of 4, then 2 left over (dropped, as drop_last does)
    shares = [list(ShardedBatches(stream, batch_size=4, rank=r, world_size=2)) for r in (0, 1)]
    assert shares == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert len(ShardedBatches(stream, batch_size=4, rank=0, world_size=2)) == 4
    with pytest.raises(ValueError, match="cannot be split evenly over 3 processes"):
        ShardedBatches(stream, batch_size=4, rank=0, world_size=3)


def test_two_process_pretraining_writes_one_run_from_rank_0(two_process_pretraining):
    run = RunFolder(two_process_pretraining / "source2")
    history = run.read_history()
    assert sorted(zip(history["model"], history["epoch"])) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert history["source_mAP"].notna().all()  # rank 0 evaluated every epoch (the smoke set evaluates each)
    metrics = run.read_metrics()
    assert metrics["processes"] == 2 and [m["model"] for m in metrics["models"]] == [1, 2]
    assert run.read_params()["notebook"] == "01_pretrain"


def test_two_process_history_stays_close_to_one_process_at_the_same_global_batch(
    two_process_pretraining, tiny_data_root, monkeypatch
):
    """Not equal: each process normalises its BatchNorm over its half of the batch and mines the hardest triplets
    within it, augmentations are drawn per process, and the gradient sums run in another order. Both start from the
    same weights on the same global batches, so after the first epoch (2 steps) the cross-entropy, a per-image mean
    untouched by mining, is within 1% (measured here: 0.02% and 0.0005% for the two models; on the tiny world two
    steps barely move it from log 6) and the source mAP within 2 points (measured: 0.03 and 0.2); later epochs drift
    apart as any two runs with other batch statistics do."""
    monkeypatch.setenv("CANU_OUTPUTS", str(two_process_pretraining))
    parameters = tiny(tiny_data_root, run_name="source1")
    assert (
        main(["run", "01_pretrain", "-f", SMOKE, *[i for k, v in parameters.items() for i in ("-p", k, str(v))]]) == 0
    )
    one, two = (RunFolder(two_process_pretraining / name).read_history() for name in ("source1", "source2"))
    first = [h[h["epoch"] == 0].sort_values("model").set_index("model") for h in (one, two)]
    relative = ((first[1]["loss_ce"] - first[0]["loss_ce"]).abs() / first[0]["loss_ce"]).max()
    assert relative < 0.01, relative
    assert (first[1]["source_mAP"] - first[0]["source_mAP"]).abs().max() < 2
    assert (first[1]["loss_ce"] != first[0]["loss_ce"]).any()  # and not the same computation
    assert one["train_acc"].between(0, 1).all() and two["train_acc"].between(0, 1).all()


def test_two_process_canu_mmt_in_channels_last_resumes_after_a_kill_to_the_uninterrupted_result(
    two_process_pretraining, tiny_data_root
):
    """Killed after its first epoch's checkpoint and resumed, the run ends with the uninterrupted run's history and
    weights. Both run DistributedDataParallel over NHWC weights (its gradient buckets are laid out otherwise than
    for contiguous ones, which notebook 03's 2-process test below uses): the ranks stay one model at every epoch,
    which each run's per-epoch check asserts by finishing."""
    outputs = two_process_pretraining
    parameters = tiny(
        tiny_data_root,
        method="mmt",
        adversary="canu",
        pretrain_run="source2",
        umap_figures=False,
        channels_last="true",
    )
    torchrun(2, "03_train", outputs, **parameters, run_name="whole")

    killed = subprocess.Popen(
        torchrun_command(2, "03_train", {**parameters, "run_name": "killed"}),
        env=environment(outputs),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = outputs / "killed" / "checkpoints" / "mmt_state.pt"  # written last in an epoch
    deadline = time.monotonic() + 300
    while not state.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    launcher = psutil.Process(killed.pid)
    processes = [*launcher.children(recursive=True), launcher]  # torchrun starts each rank in a session of its own
    for process in processes:
        process.kill()
    psutil.wait_procs(processes, timeout=30)
    killed.wait()
    assert state.exists() and not (outputs / "killed" / "metrics.json").exists()  # stopped in the middle
    resumed = torchrun(2, "03_train", outputs, **parameters, run_name="killed")
    assert "mmt: resuming after epoch" in resumed.stdout

    whole, again = RunFolder(outputs / "whole"), RunFolder(outputs / "killed")
    pd.testing.assert_frame_equal(again.read_history(), whole.read_history())
    assert len(whole.read_history()) == 2 and whole.read_metrics()["processes"] == 2
    assert whole.read_params()["channels_last"] is True and again.read_params()["channels_last"] is True
    for name in ("mmt_last", "mmt_best_by_target_labels"):
        for key, value in whole.load_checkpoint(name)["model"].items():
            assert torch.equal(value, again.load_checkpoint(name)["model"][key]), (name, key)


def test_a_rank_that_differs_is_caught(tmp_path):
    script = tmp_path / "differ.py"
    script.write_text(
        textwrap.dedent(
            """
            import torch, torch.distributed as dist
            from canu_core import distributed
            distributed.start(torch.device("cpu"))
            layer = torch.nn.Linear(3, 2)
            distributed.broadcast_state([layer])
            distributed.check_same_on_every_rank({"layer": layer})  # identical: passes
            with torch.no_grad():
                layer.weight[0, 0] += 1e-7 * dist.get_rank()  # one rank moves one weight by a rounding error
            try:
                distributed.check_same_on_every_rank({"layer": layer, "same": torch.ones(2)})
            except RuntimeError as error:
                print(f"caught on rank {dist.get_rank()}: {error}")
            dist.destroy_process_group()
            """
        )
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    done = subprocess.run(command, env=environment(tmp_path), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        assert f"caught on rank {rank}: rank {rank}: layer differ between the processes of one run" in done.stdout


def test_two_process_ssg_with_its_part_adversaries(two_process_pretraining, tiny_data_root):
    parameters = tiny(tiny_data_root, method="ssg", adversary="adv", pretrain_run="source2", run_name="ssg2")
    torchrun(2, "03_train", two_process_pretraining, **parameters)
    run = RunFolder(two_process_pretraining / "ssg2")
    history = run.read_history()
    assert list(history["epoch"]) == [0, 1] and run.read_metrics()["processes"] == 2
    assert history["disc_acc_full"].between(0, 1).all()  # the part discriminators stepped (on both ranks, in step)


def test_notebook_03_with_nproc_2_launches_torchrun_and_draws_from_its_run_folder(
    two_process_pretraining, tiny_data_root, monkeypatch
):
    monkeypatch.setenv("CANU_OUTPUTS", str(two_process_pretraining))
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    parameters = tiny(tiny_data_root, pretrain_run="source2", run_name="notebook2", nproc=2, umap_figures=False)
    executed = run_notebook("03_train", [SMOKE], parameters).read_text()
    assert "torchrun --standalone --nproc_per_node=2 -m canu_core run 03_train" in executed
    assert "mmt+canu epoch 2:" in executed  # the ranks' output, shown in the cell
    run = RunFolder(two_process_pretraining / "notebook2")
    assert run.read_history()["epoch"].tolist() == [0, 1] and run.read_params()["nproc"] == 2
    assert run.figure_path("adaptation_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert run.read_metrics()["epochs_trained"] == 2 and not (run.path / ".torchrun_params.yaml").exists()


# ---------------------------------------------------------------- BatchNorm groups against devices

GROUP, DEVICES = 16, 4


def tiny_reid_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("compact_ibn", num_classes=4, width=4).train()


def record_batch_statistics(model: nn.Module) -> list[torch.Tensor]:
    """At every BatchNorm call of `model`, each GROUP of its input's per-channel mean and variance, in call order."""
    statistics = []

    def hook(module, inputs, output):
        x = inputs[0].detach()
        dims = [0, *range(2, x.dim())]
        statistics.extend(torch.stack([g.mean(dims), g.var(dims, unbiased=False)]) for g in x.split(GROUP))

    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.register_forward_hook(hook)
    return statistics


def two_steps(network: nn.Module, model: nn.Module, batches: list[torch.Tensor]) -> dict:
    """Two SGD steps of a per-image loss on the features, logits and BN-neck embedding (so that averaging the
    processes' gradients is the gradient of one process's mean), with every BatchNorm statistic on the way."""
    statistics = record_batch_statistics(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    outputs = []
    for images in batches:
        features, logits = network(images)
        embedding = model.embedding(features)
        optimizer.zero_grad()
        (features.square().mean() + logits.square().mean() + embedding[:, 0].mean()).backward()
        optimizer.step()
        outputs.append(torch.cat([features, logits, embedding], dim=1).detach())
    return {"outputs": outputs, "statistics": statistics, "state": model.state_dict()}


def device_process(rank: int, init_file: str, results, batches: list[torch.Tensor]) -> None:
    """One of DEVICES DistributedDataParallel processes (gloo, plain BatchNorm) on its GROUP images of each batch."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=DEVICES)
    model = tiny_reid_model()
    shares = [images[rank * GROUP : (rank + 1) * GROUP] for images in batches]
    torch.save(two_steps(distributed.wrap(model, torch.device("cpu")), model, shares), results / f"{rank}.pt")
    dist.destroy_process_group()


def test_one_process_with_bn_groups_of_16_computes_what_4_ddp_processes_of_16_compute(tmp_path, monkeypatch):
    """Two training steps on batches of 64: 4 gloo processes under DistributedDataParallel, each on its 16 images
    (a rank's share), against one process with bn_group_size 16: the same BatchNorm statistics at every layer and
    group, the same outputs, and after the steps the same weights and the running statistics rank 0 holds. Without
    groups, one process differs."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(GROUP * DEVICES, 3, 32, 16, generator=generator) for _ in range(2)]
    processes = torch.multiprocessing.start_processes(
        device_process,
        args=(str(tmp_path / "rendezvous"), tmp_path, batches),
        nprocs=DEVICES,
        join=False,
        start_method="fork",  # the children share this process's imports: seconds, not a torch import each
    )
    deadline = time.monotonic() + 120
    while not processes.join(timeout=1):
        if time.monotonic() > deadline:
            for process in processes.processes:
                process.terminate()
            pytest.fail(f"the {DEVICES} processes did not finish in 120 s")
    ranks = [torch.load(tmp_path / f"{rank}.pt") for rank in range(DEVICES)]

    def one_process(group_size: int) -> dict:
        params = make_params({"device": "cpu", "bn_group_size": group_size})  # batch_ids 16 x instances 4 = 64
        model = prepare_model(tiny_reid_model(), params, torch.device("cpu"))
        return two_steps(model, model, batches)

    grouped = one_process(GROUP)
    close = {"rtol": 1e-4, "atol": 1e-5}
    calls = len(ranks[0]["statistics"])
    assert calls > 20 and len(grouped["statistics"]) == DEVICES * calls  # every BatchNorm call, each group
    for call in range(calls):
        for rank in range(DEVICES):
            torch.testing.assert_close(grouped["statistics"][call * DEVICES + rank], ranks[rank]["statistics"][call])
    for step, output in enumerate(grouped["outputs"]):
        torch.testing.assert_close(output, torch.cat([r["outputs"][step] for r in ranks]), **close)
    assert grouped["state"].keys() == ranks[0]["state"].keys()
    for name, value in grouped["state"].items():  # weights (every rank's) and running statistics (rank 0's)
        torch.testing.assert_close(value, ranks[0]["state"][name], **close, msg=name)
    whole = one_process(0)
    assert not torch.allclose(whole["outputs"][0], grouped["outputs"][0], **close)
