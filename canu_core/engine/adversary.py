"""The camera adversary shared by the SSG and MMT loops: min over phi, max over D of L_ID - mu * L_CAM (Eq. 4, 9).

The min-max is played by alternating updates, not by a gradient-reversal layer: the paper does not say which, and
with separate calls the sign of Eq. 4 / 9 is written out where it is used and each player has its own optimizer.
One `CameraAdversary` owns one discriminator and its (Adam) optimizer. Per training iteration a loop does:

    cond = conditions[indices]   # CANU only (adaptation.discriminator_conditions); the plain "adv" kind ignores it
    adversary.discriminator_step(features, camids, cond)         # D: minimise its camera CE, features detached
    loss = reid_loss + adversary.generator_loss(features, camids, cond)   # phi: + (-mu * CE), D frozen
    loss.backward(); extractor_optimizer.step()

D steps first (the classic GAN order: the extractor then plays against the updated D), on the same features, so no
extra backbone forward is needed. The generator term runs D in training mode like its own step (batch statistics)
but as a functional call on detached weights and copied buffers: the gradient reaches the features only, and D's
weights, gradients and BatchNorm running statistics are exactly as before, whatever the extractor's optimizer does.

The extractor's objective is Eq. 4's maximised camera cross-entropy (`objective` "maximise_ce", the paper's): it is
unbounded, the extractor is rewarded without limit for making D confidently wrong. "uniform_ce", an ablation, is the
bounded alternative common in domain confusion: mu * the cross-entropy of D's output to the uniform camera
distribution, smallest (log K) when D cannot tell the cameras apart at all.

CANU-SSG (Eq. 10): three adversaries, for the upper, lower and full-body features, all given the full-body centroid.
CANU-MMT (Eq. 11): one adversary per student network. kind "none" or mu = 0 builds no discriminator (so no RNG is
drawn) and every call is a no-op: such a loop is exactly its baseline. Camera ids are 0-based (ImageRecord.camid).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import distributed
from ..config import ADVERSARIES
from ..models.discriminators import build_discriminator
from .common import use_learning_rate

OBJECTIVES = ("maximise_ce", "uniform_ce")


class CameraAdversary:
    """One camera discriminator ("adv": D_CAM, Eq. 4-5; "canu": D_C-CAM, Eq. 8-9) with its optimizer, or none
    ("none", or mu = 0). `discriminator` and `optimizer` are None when inactive; the loop may schedule the optimizer's
    learning rate. merge ("sum" | "product") applies to "canu" only (see models.discriminators); `objective` is the
    extractor's (module docstring)."""

    def __init__(
        self,
        kind: str,
        feature_dim: int,
        num_cameras: int,
        mu: float,
        lr: float,
        weight_decay: float = 0.0,
        merge: str = "sum",
        device: torch.device | str = "cpu",
        objective: str = "maximise_ce",
        steps: int = 1,
    ):
        if kind not in ADVERSARIES:
            raise ValueError(f"adversary kind must be one of {ADVERSARIES}, got {kind!r}")
        if objective not in OBJECTIVES:
            raise ValueError(f"adversary objective must be one of {OBJECTIVES}, got {objective!r}")
        if mu < 0:
            raise ValueError(f"mu must be >= 0 (the minus sign of Eq. 4 is applied here), got {mu}")
        self.config = {"kind": kind, "feature_dim": feature_dim, "num_cameras": num_cameras, "mu": mu, "merge": merge}
        if steps < 1:
            raise ValueError(f"the discriminator takes at least one step per iteration, got {steps}")
        self.mu = mu
        self.objective = objective
        self.steps = steps
        self.num_cameras = num_cameras
        self.conditional = kind == "canu"
        self.discriminator = None
        self.optimizer = None
        if kind != "none" and mu > 0:
            self.discriminator = build_discriminator(kind, feature_dim, num_cameras, merge).to(device)
            self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr, weight_decay=weight_decay)

    @property
    def active(self) -> bool:
        return self.discriminator is not None

    def discriminator_step(
        self, features: torch.Tensor, camids: torch.Tensor, centroids: torch.Tensor | None = None
    ) -> dict[str, float]:
        """The max over D of Eq. 4 / 9: `steps` optimizer steps minimising D's camera cross-entropy on the detached
        features (the extractor gets no gradient): with more than one, D catches up with the extractor before it
        plays. Returns the loss and accuracy before the first step; {} if inactive."""
        inputs = self._inputs(features.detach(), camids, centroids)
        if not self.active:
            return {}
        for step in range(self.steps):
            with torch.autocast(features.device.type, enabled=False):
                logits = self.discriminator(*inputs)
                loss = F.cross_entropy(logits, camids)
            if step == 0:
                before = {"loss": loss.item(), "accuracy": (logits.argmax(1) == camids).float().mean().item()}
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(self.discriminator)  # under torchrun: every rank takes the same step
            self.optimizer.step()
        return before

    def _frozen_logits(
        self, features: torch.Tensor, camids: torch.Tensor, centroids: torch.Tensor | None
    ) -> torch.Tensor:
        """D's camera logits as D stands, differentiable with respect to the features only: D's weights get no
        gradient and its running statistics are not updated."""
        inputs = self._inputs(features, camids, centroids)
        if not self.active:
            raise RuntimeError("this adversary has no discriminator (kind 'none' or mu = 0)")
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        frozen |= {name: b.clone() for name, b in self.discriminator.named_buffers()}
        with torch.autocast(features.device.type, enabled=False):
            return torch.func.functional_call(self.discriminator, frozen, inputs).float()

    def camera_loss(
        self, features: torch.Tensor, camids: torch.Tensor, centroids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L_CAM (Eq. 5) or L_C-CAM (Eq. 8) under D as it stands (see _frozen_logits)."""
        return F.cross_entropy(self._frozen_logits(features, camids, centroids), camids)

    def uniform_loss(
        self, features: torch.Tensor, camids: torch.Tensor, centroids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cross-entropy of D's camera distribution to the uniform one, under D as it stands: >= log K, equal
        when D outputs the same probability for every camera."""
        return -F.log_softmax(self._frozen_logits(features, camids, centroids), dim=1).mean(dim=1).mean()

    def generator_loss(
        self, features: torch.Tensor, camids: torch.Tensor, centroids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The extractor's adversarial term, added to its re-ID loss: -mu * L_CAM (the min over phi of Eq. 4 / 9)
        or, with the "uniform_ce" objective, mu * uniform_loss. An exact 0 without a graph when inactive, so the
        baseline's loss and gradients are unchanged bit for bit."""
        if not self.active:
            self._inputs(features, camids, centroids)
            return features.new_zeros(())
        if self.objective == "uniform_ce":
            return self.mu * self.uniform_loss(features, camids, centroids)
        return -self.mu * self.camera_loss(features, camids, centroids)

    def _inputs(
        self, features: torch.Tensor, camids: torch.Tensor, centroids: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        """The discriminator's arguments, (features,) or (features, centroids), once the shapes are checked (also
        when inactive, so that a loop failing with mu > 0 fails with mu = 0 too)."""
        if features.dim() != 2 or camids.shape != features.shape[:1]:
            raise ValueError(
                f"expected features (N x D) and camids (N), got {tuple(features.shape)} and {tuple(camids.shape)}"
            )
        if camids.numel() and (camids.min() < 0 or camids.max() >= self.num_cameras):
            raise ValueError(
                f"camids must be 0-based camera indices below {self.num_cameras}, got "
                f"[{camids.min().item()}, {camids.max().item()}]"
            )
        if not self.conditional:
            return (features.float(),)
        if centroids is None or centroids.shape != features.shape:
            shape = None if centroids is None else tuple(centroids.shape)
            raise ValueError(
                f"the conditional adversary needs one centroid per sample, shaped like the features "
                f"{tuple(features.shape)}, got {shape}"
            )
        return features.float(), centroids.float()

    def state_dict(self) -> dict:
        """Everything a resumed run needs: the configuration (checked on loading), D's weights and its optimizer."""
        state = {"config": dict(self.config)}
        if self.active:
            state |= {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict()}
        return state

    def use_learning_rate(self, lr: float) -> None:
        """The discriminator's learning rate from now on (a restored optimizer keeps the one it was saved with)."""
        if self.active:
            use_learning_rate(self.optimizer, lr)

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != self.config:
            raise ValueError(f"adversary state saved with {state['config']}, this adversary is {self.config}")
        if self.active:
            self.discriminator.load_state_dict(state["discriminator"])
            self.optimizer.load_state_dict(state["optimizer"])
