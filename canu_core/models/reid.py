"""The re-ID model: backbone -> global average pooling -> BN-neck -> bias-free classifier.

MMT's head: the triplet loss uses the pooled feature before the BN-neck, the classifier the BN-neck output, and
retrieval the L2-normalised BN-neck output. The BN-neck bias is frozen at zero (Luo et al., "Bag of tricks").
With `parts=True` (SSG) the full map, its upper half and its lower half are pooled separately, each with its own
BN-neck, and the model holds SSG's global embedding (Linear -> BatchNorm -> ReLU, its resnet.py's `feat`, `feat_bn`),
which the SSG loop applies to the full-body pooled feature; SSG trains them with triplet losses only, so that model
has no classifier.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone
from .grouped_batchnorm import batch_statistics_norm
from .weights import load_backbone_weights

CLASSIFIER_INIT_STD = 0.001  # MMT's classifier initialisation
EMBEDDING_INIT_STD = 0.001  # SSG's embedding layer initialisation


def bn_neck(dim: int) -> nn.BatchNorm1d:
    """BatchNorm1d with a frozen zero bias: only the scale is learned."""
    neck = nn.BatchNorm1d(dim)
    nn.init.zeros_(neck.bias)
    neck.bias.requires_grad_(False)
    return neck


def global_embedding(dim: int) -> nn.Sequential:
    """SSG's embedding of the full-body pooled feature: a bias-free Linear(dim, dim) drawn from N(0, 0.001^2), then
    BatchNorm1d (weight 1, bias 0) and ReLU; SSG's fourth triplet reads its output."""
    linear = nn.Linear(dim, dim, bias=False)
    nn.init.normal_(linear.weight, std=EMBEDDING_INIT_STD)
    return nn.Sequential(linear, nn.BatchNorm1d(dim), nn.ReLU())


class ReidModel(nn.Module):
    """Train mode: (pooled pre-BN feature, logits or None), or with parts the list [full, upper, lower] of pooled
    pre-BN features. Eval mode: the L2-normalised BN-neck feature, or with parts the list of three of them (the
    global embedding is trained, never tested: SSG tests on the parts)."""

    def __init__(
        self,
        backbone_name: str,
        num_classes: int,
        last_stride: int = 1,
        pretrained_path: str | Path | None = None,
        parts: bool = False,
        **backbone_kwargs,
    ):
        super().__init__()
        if parts and num_classes:
            raise ValueError("parts=True is SSG's triplet-only model: use num_classes=0")
        self.backbone = build_backbone(backbone_name, last_stride=last_stride, **backbone_kwargs)
        if pretrained_path is not None:
            load_backbone_weights(self.backbone, pretrained_path)
        self.feature_dim = self.backbone.out_channels
        self.parts = parts
        self.bn_necks = nn.ModuleList(bn_neck(self.feature_dim) for _ in range(3 if parts else 1))
        if parts:
            self.global_embedding = global_embedding(self.feature_dim)
        self.classifier: nn.Linear | None = None
        self.reset_classifier(num_classes)
        self.channels_last = False

    def use_channels_last(self, enabled: bool = True) -> ReidModel:
        """Hold the convolution weights in NHWC memory (channels_last) and convert every input to it: tensor-core
        GPUs run mixed-precision convolutions faster so. The function is unchanged; the sums run in another order.
        Not saved in checkpoints (a layout, not a weight): a trainer sets it from its parameters."""
        self.channels_last = enabled
        return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    def reset_classifier(self, num_classes: int, init_weights: torch.Tensor | None = None) -> None:
        """Replace the classifier by a fresh bias-free Linear (none if num_classes is 0).

        MMT calls this every epoch with the L2-normalised cluster centroids as `init_weights` (num_classes x
        feature_dim); otherwise rows are drawn from N(0, 0.001^2). The old parameters are gone: rebuild the
        optimizer afterwards (MMT does, every epoch).
        """
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if num_classes == 0:
            if init_weights is not None:
                raise ValueError("init_weights given for a model without classifier (num_classes=0)")
            self.classifier = None
            return
        device = self.bn_necks[0].weight.device
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False, device=device)
        if init_weights is None:
            nn.init.normal_(self.classifier.weight, std=CLASSIFIER_INIT_STD)
            return
        if tuple(init_weights.shape) != (num_classes, self.feature_dim):
            raise ValueError(
                f"init_weights must have shape {(num_classes, self.feature_dim)}, got {tuple(init_weights.shape)}"
            )
        with torch.no_grad():
            self.classifier.weight.copy_(init_weights)

    def forward(self, images: torch.Tensor):
        feature_map = self._feature_map(images)
        pooled = self._pool(feature_map)
        # The BN-necks run in train mode too, even where only pre-BN features are returned, so that their
        # running statistics (used by eval mode) follow the training features.
        normalised = [neck(feature) for neck, feature in zip(self.bn_necks, pooled)]
        if not self.training:
            unit = [F.normalize(feature, dim=1) for feature in normalised]
            return unit if self.parts else unit[0]
        if self.parts:
            return pooled
        logits = self.classifier(normalised[0]) if self.classifier is not None else None
        return pooled[0], logits

    def embedding(self, pooled: torch.Tensor, part: int = 0) -> torch.Tensor:
        """The L2-normalised BN-neck output of part `part` for pooled features the forward returned: in train mode
        with the batch's statistics (each group's, with grouped BatchNorm), as the forward's own neck computed it,
        but without updating the running statistics a second time (what the camera discriminators read with
        adversary_features "embedding")."""
        neck = self.bn_necks[part]
        if self.training:
            return F.normalize(batch_statistics_norm(neck, pooled), dim=1)
        normalised = F.batch_norm(
            pooled, neck.running_mean, neck.running_var, neck.weight, neck.bias, training=False, eps=neck.eps
        )
        return F.normalize(normalised, dim=1)

    def pooled_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[full] or [full, upper, lower] pooled features before the BN-necks, in the model's current mode and
        without touching any BN-neck: SSG clusters these."""
        return self._pool(self._feature_map(images))

    def _feature_map(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.backbone(images)

    def _pool(self, feature_map: torch.Tensor) -> list[torch.Tensor]:
        """[full] or [full, upper half, lower half] (rows split at h // 2), each averaged to (N, C)."""
        regions = [feature_map]
        if self.parts:
            height = feature_map.shape[2]
            if height < 2:
                raise ValueError(f"part pooling needs a feature map at least 2 rows high, got {height}")
            regions += [feature_map[:, :, : height // 2], feature_map[:, :, height // 2 :]]
        return [region.mean(dim=(2, 3)) for region in regions]


def build_model(
    arch: str,
    num_classes: int,
    last_stride: int = 1,
    pretrained_path: str | Path | None = None,
    parts: bool = False,
    **kwargs,
) -> ReidModel:
    """Factory used by configs: `arch` names a backbone (see backbones.BACKBONES); kwargs go to its builder."""
    return ReidModel(arch, num_classes, last_stride=last_stride, pretrained_path=pretrained_path, parts=parts, **kwargs)
