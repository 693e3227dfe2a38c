"""Loading trained models from run folders: notebook 01's source models, notebook 03's adapted models, and the
checks a pretraining run passes before anything adapts from it."""

from __future__ import annotations

from ..config import Params
from ..models import ReidModel, build_model
from ..runs import RunFolder, UnfinishedRunError


def model_tag(index: int) -> str:
    return f"model{index}"


def pretraining_checkpoints(index: int) -> tuple[str, str, None]:
    """Source model `index`'s state checkpoint (every epoch's, which also loads as the last model), its best model
    (the epoch with the best source mAP) and no separate last model."""
    return f"{model_tag(index)}_last", f"{model_tag(index)}_best", None


def adaptation_checkpoints(method: str) -> tuple[str, str, str]:
    """An adaptation's state checkpoint, its best model (the epoch with the best target mAP: chosen with the target's
    labels, for reference only) and its last epoch's model."""
    return f"{method}_state", f"{method}_best_by_target_labels", f"{method}_last"


def pretraining_record(run: RunFolder, params: Params) -> dict:
    """The parameters pretraining run `run` recorded, once checked: it exists, it trained at the input size of
    `params` (a model trained at another size would be adapted and evaluated at the wrong one), and it finished
    every epoch of every model, unless `params.accept_unfinished_pretraining`."""
    if not run.params_path.is_file():
        raise FileNotFoundError(
            f"no pretraining run {run.path.name!r} in {run.path.parent}: run notebook 01 first "
            "(python -m canu_core notebook 01_pretrain -f ...), or pass -p pretrain_run "
            "<its run_name>"
        )
    trained = run.read_params()
    if (trained["height"], trained["width"]) != (params.height, params.width):
        raise ValueError(
            f"run {run.path.name!r} trained at {trained['height']}x{trained['width']}, not at "
            f"height x width = {params.height}x{params.width}: pass the same size"
        )
    unfinished = unfinished_models(run, trained)
    if unfinished and not params.accept_unfinished_pretraining:
        raise UnfinishedRunError(
            f"pretraining run {run.path.name!r} did not finish: {'; '.join(unfinished)}. Run notebook 01 again "
            f"with run_name {run.path.name!r} and its parameters (it resumes where it stopped), or pass "
            "-p accept_unfinished_pretraining true to adapt from it as it is"
        )
    return trained


def unfinished_models(run: RunFolder, trained: dict) -> list[str]:
    """For each source model of `run` short of its last epoch (its record's `epochs`), how far it got."""
    history = run.read_history()
    found = []
    for index in range(1, trained["n_models"] + 1):
        rows = history[history["model"] == index] if "model" in history else history
        done = int(rows["epoch"].max()) + 1 if len(rows) else 0
        if done < trained["epochs"]:
            found.append(f"model {index} trained {done} of {trained['epochs']} epochs")
    return found


def load_source_model(run: RunFolder, index: int = 1, which: str = "last") -> ReidModel:
    """A source model saved by `pretrain` (checkpoint `model<index>_<which>`, which = "last" or "best"), on the CPU."""
    name = f"{model_tag(index)}_{which}"
    state = run.load_checkpoint(name)
    if state is None:
        found = sorted(p.stem for p in run.checkpoint_path(name).parent.glob("*.pt"))
        raise FileNotFoundError(
            f"no checkpoint {run.checkpoint_path(name)}: run notebook 01 with run_name "
            f"{run.path.name!r} first (checkpoints found: {found or 'none'})"
        )
    model = build_model(state["arch"], num_classes=state["num_classes"], last_stride=state["last_stride"])
    model.load_state_dict(state["model"])
    return model


def source_architecture(source_run: RunFolder, index: int, which: str) -> dict:
    """arch and last_stride of a pretrained source model, so that the adapted model can be rebuilt from its own
    checkpoint."""
    state = source_run.load_checkpoint(f"{model_tag(index)}_{which}")
    return {"arch": state["arch"], "last_stride": state["last_stride"]}


def load_adapted_model(run: RunFolder, method: str, which: str = "last") -> ReidModel:
    """An adapted model on the CPU: `which` "last" (the final epoch's) or "best_by_target_labels" (the epoch with
    the best target mAP: chosen with the target's labels, for reference only). MMT's is its mean teacher 1."""
    name = f"{method}_{which}"
    state = run.load_checkpoint(name)
    if state is None:
        raise FileNotFoundError(f"no checkpoint {run.checkpoint_path(name)}: run the {method} adaptation first")
    model = build_model(
        state["arch"], num_classes=state["num_classes"], last_stride=state["last_stride"], parts=state["parts"]
    )
    model.load_state_dict(state["model"])
    return model
