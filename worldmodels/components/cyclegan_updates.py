"""How a CycleGAN trains: the image pool of past fakes, the weighted losses, and one training step (a generator
update of both generators, then a discriminator update of both discriminators).

One Adam optimiser holds the discriminators and the generators as two parameter groups (discriminators first),
so the shared training loop checkpoints and restores a CycleGAN like any other model. Each update computes
gradients for one group only; torch's optimisers skip parameters without a gradient. Frames are (B, C, 64, 64)
floats in [-1, 1]; losses are means over pixels (L1) or patch scores (MSE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from worldmodels.components.cyclegan import CycleGAN

METRIC_NAMES = ("generator_loss", "validity_loss", "cycle_loss", "identity_loss", "discriminator_loss")
"""What :meth:`CycleGANUpdates.step` reports, in CSV order."""


class ImagePool:
    """A buffer of up to ``size`` past fakes, so the discriminators also see older generator outputs.

    :meth:`query` takes a batch (B, C, H, W); each frame is stored while the pool is not full and returned as
    is; once full, with probability 1/2 a random stored frame is returned in its place (and the new one stored
    instead), else the new frame is returned. ``size`` 0 returns every batch unchanged. Draws come from torch's
    global RNG; the pool is not checkpointed, so a resumed run starts with an empty one.
    """

    def __init__(self, size: int = 50) -> None:
        if size < 0:
            raise ValueError(f"the image pool size must be >= 0, got {size}")
        self.size = size
        self.frames: list[torch.Tensor] = []

    def query(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, C, H, W) -> (B, C, H, W), detached: the batch with some frames swapped for pooled ones."""
        frames = frames.detach()
        if self.size == 0:
            return frames
        out = []
        for frame in frames:
            if len(self.frames) < self.size:
                self.frames.append(frame)
                out.append(frame)
            elif float(torch.rand(())) < 0.5:
                index = int(torch.randint(len(self.frames), ()))
                out.append(self.frames[index])
                self.frames[index] = frame
            else:
                out.append(frame)
        return torch.stack(out)


@dataclass(frozen=True)
class CycleGANWeights:
    """The weights of the generators' loss terms (the book's: validity 1, cycle 10, identity 2)."""

    validity: float = 1.0
    """MSE of the discriminators' patch scores of the fakes against 1."""
    cycle: float = 10.0
    """L1 between a frame and its round trip A->B->A or B->A->B."""
    identity: float = 2.0
    """L1 between a frame and its translation into its own domain (G_BA(a) vs a, G_AB(b) vs b)."""


def make_optimizer(model: CycleGAN, learning_rate: float = 2e-4) -> torch.optim.Adam:
    """Adam (betas 0.5, 0.999) with two parameter groups: the discriminators', then the generators'."""
    groups = [{"params": model.discriminators()}, {"params": model.generators()}]
    return torch.optim.Adam(groups, lr=learning_rate, betas=(0.5, 0.999))


def patch_mse(scores: torch.Tensor, target: float) -> torch.Tensor:
    """Mean squared distance of patch scores (B, 1, h, w) to ``target`` (1 real, 0 fake)."""
    return F.mse_loss(scores, torch.full_like(scores, target))


class CycleGANUpdates:
    """One CycleGAN training step of ``model`` stepping ``optimizer`` (from :func:`make_optimizer`), with an
    image pool of ``pool_size`` fakes per domain."""

    def __init__(self, model: CycleGAN, optimizer: torch.optim.Optimizer, weights: CycleGANWeights,
                 pool_size: int = 50) -> None:
        self.model = model
        self.optimizer = optimizer
        self.weights = weights
        self.pool_a = ImagePool(pool_size)
        self.pool_b = ImagePool(pool_size)

    def step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """A generator update, then a discriminator update, on unpaired batches real_a (B, C, 64, 64) and
        real_b (B', C, 64, 64).

        :returns: detached scalars: generator_loss (the weighted sum), its unweighted terms validity_loss,
            cycle_loss and identity_loss (each summed over both directions), and discriminator_loss (the mean
            of both discriminators' 0.5 * (MSE(real, 1) + MSE(pooled fake, 0))).
        """
        fake_a, fake_b, metrics = self._generator_update(real_a, real_b)
        metrics["discriminator_loss"] = self._discriminator_update(real_a, real_b, fake_a, fake_b)
        return metrics

    def _generator_update(self, real_a: torch.Tensor, real_b: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        model, w = self.model, self.weights
        for parameter in model.discriminators():
            parameter.requires_grad_(False)
        try:
            fake_b = model.generator_ab(real_a)  # (B, C, 64, 64)
            fake_a = model.generator_ba(real_b)  # (B', C, 64, 64)
            validity = patch_mse(model.discriminator_b(fake_b), 1.0) + patch_mse(model.discriminator_a(fake_a), 1.0)
            cycle = F.l1_loss(model.generator_ba(fake_b), real_a) + F.l1_loss(model.generator_ab(fake_a), real_b)
            identity = F.l1_loss(model.generator_ba(real_a), real_a) + F.l1_loss(model.generator_ab(real_b), real_b)
            loss = w.validity * validity + w.cycle * cycle + w.identity * identity
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        finally:
            for parameter in model.discriminators():
                parameter.requires_grad_(True)
        metrics = {"generator_loss": loss.detach(), "validity_loss": validity.detach(),
                   "cycle_loss": cycle.detach(), "identity_loss": identity.detach()}
        return fake_a.detach(), fake_b.detach(), metrics

    def _discriminator_update(self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor,
                              fake_b: torch.Tensor) -> torch.Tensor:
        model = self.model
        pooled_a, pooled_b = self.pool_a.query(fake_a), self.pool_b.query(fake_b)
        loss_a = 0.5 * (patch_mse(model.discriminator_a(real_a), 1.0) + patch_mse(model.discriminator_a(pooled_a), 0.0))
        loss_b = 0.5 * (patch_mse(model.discriminator_b(real_b), 1.0) + patch_mse(model.discriminator_b(pooled_b), 0.0))
        loss = 0.5 * (loss_a + loss_b)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()
