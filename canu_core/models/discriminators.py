"""Camera discriminators (paper, V-A): the plain "+Adv." one (Eq. 4-5) and CANU's conditional one (Eq. 8-9).

Paper widths for 2048-d features: condition branch [2048 -> 1024], feature branch [2048 -> 1024], then
[1024 -> 1024] and [1024 -> number of cameras], with BatchNorm + ReLU; here the hidden width follows the backbone's
feature size (feature_dim // 2 unless given). The paper's third layer takes 1024 inputs, so the two branch outputs
are merged element-wise; the public code is not available to say whether by sum or product. Both are offered;
"sum" is the default because the paper builds on the conditional GAN of Mirza & Osindero [33], whose discriminator
joins its two branches additively (a joint layer on their concatenation is a sum of per-branch projections), and a
sum of two ReLU outputs passes gradient wherever either is active, where a product is zero wherever either is.
"""

from __future__ import annotations

import torch
from torch import nn

MERGES = ("sum", "product")


def dense_block(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear + BatchNorm + ReLU, the unit of every hidden layer in V-A."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True))


def camera_head(hidden: int, num_cameras: int) -> nn.Sequential:
    """[hidden -> hidden] + BN + ReLU, then [hidden -> num_cameras] camera logits."""
    return nn.Sequential(dense_block(hidden, hidden), nn.Linear(hidden, num_cameras))


def hidden_width(feature_dim: int, num_cameras: int, hidden: int | None) -> int:
    """The hidden width (feature_dim // 2 by default, as 2048 -> 1024 in the paper), after checking the sizes."""
    if num_cameras < 2:
        raise ValueError(f"a camera discriminator needs at least 2 cameras, got {num_cameras}")
    hidden = feature_dim // 2 if hidden is None else hidden
    if hidden < 1:
        raise ValueError(f"hidden width must be >= 1 (feature_dim={feature_dim}, hidden={hidden})")
    return hidden


class CameraDiscriminator(nn.Module):
    """D_CAM (Eq. 5): camera logits from the feature alone, through the feature branch and the camera head."""

    conditional = False

    def __init__(self, feature_dim: int, num_cameras: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden_width(feature_dim, num_cameras, hidden)
        self.feature_branch = dense_block(feature_dim, hidden)
        self.head = camera_head(hidden, num_cameras)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_branch(features))


class ConditionalCameraDiscriminator(nn.Module):
    """D_C-CAM (Eq. 8): camera logits from the feature and the sample's cluster centroid, the condition.

    The centroid is detached here: no adversarial gradient flows back through the ID branch (section IV), while the
    condition branch's own weights still learn from the discriminator's loss.
    """

    conditional = True

    def __init__(self, feature_dim: int, num_cameras: int, hidden: int | None = None, merge: str = "sum"):
        super().__init__()
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
        hidden = hidden_width(feature_dim, num_cameras, hidden)
        self.merge = merge
        self.condition_branch = dense_block(feature_dim, hidden)
        self.feature_branch = dense_block(feature_dim, hidden)
        self.head = camera_head(hidden, num_cameras)

    def forward(self, features: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        condition = self.condition_branch(centroids.detach())
        camera = self.feature_branch(features)
        merged = camera + condition if self.merge == "sum" else camera * condition
        return self.head(merged)

    def extra_repr(self) -> str:
        return f"merge={self.merge!r}"


def build_discriminator(
    kind: str, feature_dim: int, num_cameras: int, merge: str = "sum", hidden: int | None = None
) -> CameraDiscriminator | ConditionalCameraDiscriminator:
    """ "adv": the plain D_CAM ("+Adv.", which has no merge: `merge` is ignored); "canu": the conditional D_C-CAM."""
    if kind == "adv":
        return CameraDiscriminator(feature_dim, num_cameras, hidden)
    if kind == "canu":
        return ConditionalCameraDiscriminator(feature_dim, num_cameras, hidden, merge)
    raise ValueError(f"discriminator kind must be 'adv' or 'canu', got {kind!r}")
