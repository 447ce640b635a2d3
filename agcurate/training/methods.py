"""The two training methods around a backbone: SimCLR (contrastive) and DINO (self-distillation).

Losses, heads and the teacher's momentum update are lightly's. Both expose ``loss(views, ...)``
and ``export_backbone()``: the network whose features are kept (the projection heads are
dropped; for DINO the teacher, as in the paper).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

METHODS = ("simclr", "dino")


class SimCLR(nn.Module):
    """Backbone + lightly's SimCLR MLP head, trained with the NT-Xent loss between two views."""

    def __init__(self, backbone: nn.Module, dim: int, temperature: float = 0.2,
                 hidden_dim: int = 2048, out_dim: int = 128):
        super().__init__()
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        self.backbone = backbone
        self.head = SimCLRProjectionHead(input_dim=dim, hidden_dim=hidden_dim, output_dim=out_dim)
        self.criterion = NTXentLoss(temperature=temperature)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x).flatten(1))

    def loss(self, views: list[torch.Tensor], *, autocast, **_kw) -> torch.Tensor:
        with autocast():
            z0, z1 = self.project(views[0]), self.project(views[1])
        return self.criterion(z0.float(), z1.float())

    def after_backward(self, epoch: int) -> None:
        pass

    def after_step(self, step: int, total_steps: int) -> None:
        pass

    def export_backbone(self) -> nn.Module:
        return self.backbone


class DINO(nn.Module):
    """Student and momentum teacher with lightly's DINO heads and loss; works with small batches.

    The teacher sees the two global views, the student all views (two global + local crops).
    """

    def __init__(self, backbone: nn.Module, dim: int, epochs: int, hidden_dim: int = 1024,
                 bottleneck_dim: int = 256, out_dim: int = 4096, momentum: float = 0.996):
        super().__init__()
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        self.backbone = backbone
        self.head = DINOProjectionHead(dim, hidden_dim, bottleneck_dim, out_dim, freeze_last_layer=1)
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = DINOProjectionHead(dim, hidden_dim, bottleneck_dim, out_dim)
        self.teacher_head.load_state_dict(self.head.state_dict())
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)
        self.momentum = momentum
        self.criterion = DINOLoss(output_dim=out_dim, warmup_teacher_temp_epochs=max(1, min(30, epochs // 3)))

    def loss(self, views: list[torch.Tensor], *, autocast, epoch: int = 0, **_kw) -> torch.Tensor:
        with autocast():
            with torch.no_grad():
                teacher = [self.teacher_head(self.teacher_backbone(v).flatten(1)) for v in views[:2]]
            student = [self.head(self.backbone(v).flatten(1)) for v in views]
        return self.criterion([t.float() for t in teacher], [s.float() for s in student], epoch=epoch)

    def after_backward(self, epoch: int) -> None:
        self.head.cancel_last_layer_gradients(epoch)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        m = cosine_schedule(step, max(1, total_steps), self.momentum, 1.0)
        update_momentum(self.backbone, self.teacher_backbone, m=m)
        update_momentum(self.head, self.teacher_head, m=m)

    def export_backbone(self) -> nn.Module:
        return self.teacher_backbone


def build_method(method: str, backbone: nn.Module, dim: int, *, temperature: float, epochs: int) -> nn.Module:
    """The training module for ``--method``."""
    if method == "simclr":
        return SimCLR(backbone, dim, temperature=temperature)
    if method == "dino":
        return DINO(backbone, dim, epochs=epochs)
    raise ValueError(f"unknown method {method!r}: use {' or '.join(METHODS)}")
