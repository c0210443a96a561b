"""The adversarial losses, the WGAN-GP gradient penalty and WGAN weight clipping.

Scores are the critic's outputs, (B,): logits for the "bce" loss (DCGAN), unbounded values for "wasserstein".
Both losses are minimised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

LossName = Literal["bce", "wasserstein"]


def critic_loss(kind: LossName, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic's loss for scores (B,) of real and fake frames.

    bce: BCE of sigmoid(real) against 1 plus BCE of sigmoid(fake) against 0. wasserstein: mean(fake) - mean(real),
    the negated estimate of the Wasserstein distance (the book's -mean(y * p) with y = +1 real, -1 fake, up to a
    factor 2).
    """
    if kind == "bce":
        return (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
                + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores)))
    return fake_scores.mean() - real_scores.mean()


def generator_loss(kind: LossName, fake_scores: torch.Tensor) -> torch.Tensor:
    """The generator's loss for the critic's scores (B,) of its frames: bce: BCE against 1 (the non-saturating
    loss); wasserstein: -mean(fake)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
    return -fake_scores.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """WGAN-GP's penalty mean((1 - ||grad_x critic(x)||)^2) at x = e * real + (1 - e) * fake, e ~ U(0, 1) per
    sample; real and fake (B, C, H, W), or of any shape with the batch first.

    :returns: the penalty (a scalar, differentiable with respect to the critic's weights) and the mean gradient
        norm (a detached scalar; the penalty pushes it toward 1).
    """
    mix = torch.rand(real.shape[0], *[1] * (real.dim() - 1), device=real.device, dtype=real.dtype)  # (B, 1, ...)
    points = (mix * real + (1 - mix) * fake.detach()).requires_grad_(True)  # like real
    (gradient,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
    norms = gradient.flatten(1).norm(dim=1)  # (B,)
    return (1 - norms).pow(2).mean(), norms.mean().detach()


@torch.no_grad()
def clip_weights(critic: nn.Module, limit: float) -> None:
    """Clamp every parameter of ``critic`` to [-limit, limit] in place (WGAN's Lipschitz constraint)."""
    for parameter in critic.parameters():
        parameter.clamp_(-limit, limit)
