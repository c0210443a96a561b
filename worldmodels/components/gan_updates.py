"""How each GAN variant trains: its recipe (loss, Lipschitz constraint, update ratio, optimiser) and the two
updates, one of the critic and one of the generator.

One optimiser holds both networks as two parameter groups (critic first, then generator), so the shared
training loop checkpoints and restores a GAN like any other model. Each update computes gradients for one
network only; torch's optimisers skip parameters without a gradient, so a step changes only that network.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch

from worldmodels.components.gan import GAN
from worldmodels.components.gan_losses import LossName, clip_weights, critic_loss, generator_loss, gradient_penalty
from worldmodels.config_schema import GANConfig, GANVariantName


@dataclass(frozen=True)
class GANRecipe:
    """Everything about a variant's training beyond its networks."""

    loss: LossName
    n_critic: int
    """Critic updates per generator update."""
    optimizer: Literal["rmsprop", "adam"]
    critic_lr: float
    generator_lr: float
    clip_value: float | None = None
    """Clamp the critic's weights to +-this after each critic update (WGAN); None: no clipping."""
    gp_weight: float = 0.0
    """Weight of the gradient penalty in the critic's loss (WGAN-GP); 0: no penalty."""
    reconstruction_weight: float = 0.0
    """Weight of L1(generator(latent), target) in the generator's loss, when updates are given the latents of
    target frames (a GAN that decodes V's z); 0: the generator is scored by the critic alone."""

    def metric_names(self) -> tuple[str, ...]:
        """The metrics :class:`GANUpdates` reports under this recipe, in CSV order."""
        penalty = ("gradient_penalty", "grad_norm") if self.gp_weight else ()
        reconstruction = ("reconstruction",) if self.reconstruction_weight else ()
        return ("critic_loss", "generator_loss", "critic_gap", *penalty, *reconstruction)


BOOK_RECIPES: dict[GANVariantName, GANRecipe] = {
    "dcgan": GANRecipe("bce", n_critic=1, optimizer="rmsprop", critic_lr=8e-4, generator_lr=4e-4),
    "wgan": GANRecipe("wasserstein", n_critic=5, optimizer="rmsprop", critic_lr=5e-5, generator_lr=5e-5,
                      clip_value=0.01),
    "wgan_gp": GANRecipe("wasserstein", n_critic=5, optimizer="adam", critic_lr=2e-4, generator_lr=2e-4,
                         gp_weight=10.0),
}
"""The generative-deep-learning book's settings for each variant."""


def recipe_for(cfg: GANConfig) -> GANRecipe:
    """The book's recipe of ``cfg.variant`` with the settings ``cfg`` gives (the ones not null) put in."""
    recipe = BOOK_RECIPES[cfg.variant]
    changes: dict[str, object] = {}
    if cfg.n_critic is not None:
        changes["n_critic"] = cfg.n_critic
    if cfg.learning_rate is not None:
        changes["critic_lr"] = changes["generator_lr"] = cfg.learning_rate
    if cfg.clip_value is not None:
        changes["clip_value"] = cfg.clip_value
    if cfg.gp_weight is not None:
        changes["gp_weight"] = cfg.gp_weight
    if cfg.latent_source == "vae":
        changes["reconstruction_weight"] = cfg.reconstruction_weight
    return dataclasses.replace(recipe, **changes)


def make_optimizer(model: GAN, recipe: GANRecipe) -> torch.optim.Optimizer:
    """One optimiser with two parameter groups, the critic's then the generator's, at the recipe's rates
    (Adam with betas (0.5, 0.999), or RMSprop with torch's defaults)."""
    groups = [{"params": list(model.critic.parameters()), "lr": recipe.critic_lr},
              {"params": list(model.generator.parameters()), "lr": recipe.generator_lr}]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, betas=(0.5, 0.999))
    return torch.optim.RMSprop(groups)


class GANUpdates:
    """The critic and generator updates of ``model`` under ``recipe``, stepping ``optimizer`` (from
    :func:`make_optimizer`). Frames are (B, C, 64, 64) floats in [-1, 1]; metrics are detached scalars."""

    def __init__(self, model: GAN, optimizer: torch.optim.Optimizer, recipe: GANRecipe) -> None:
        self.model = model
        self.optimizer = optimizer
        self.recipe = recipe

    def critic_update(self, real: torch.Tensor, latent: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One critic step on ``real`` frames (B, C, 64, 64) against as many fresh fakes, then the weight clip.
        The fakes are drawn from ``latent`` (B, Z) when given, else from fresh noise.

        :returns: critic_loss (before the penalty), critic_gap = mean score of real - mean score of fake
            (the Wasserstein estimate for the WGANs), and with a penalty gradient_penalty and grad_norm.
        """
        model, recipe = self.model, self.recipe
        with torch.no_grad():
            latent = model.sample_latent(real.shape[0]) if latent is None else latent  # (B, Z)
            fake = model.generator(latent)  # (B, C, 64, 64)
        real_scores, fake_scores = model.critic(real), model.critic(fake)  # (B,), (B,)
        loss = critic_loss(recipe.loss, real_scores, fake_scores)
        metrics = {"critic_loss": loss.detach(), "critic_gap": (real_scores.mean() - fake_scores.mean()).detach()}
        if recipe.gp_weight:
            penalty, grad_norm = gradient_penalty(model.critic, real, fake)
            metrics.update(gradient_penalty=penalty.detach(), grad_norm=grad_norm)
            loss = loss + recipe.gp_weight * penalty
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if recipe.clip_value is not None:
            clip_weights(model.critic, recipe.clip_value)
        return metrics

    def generator_update(self, batch_size: int, latent: torch.Tensor | None = None,
                         target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One generator step, the critic frozen: on ``batch_size`` fresh fakes, or on the fakes of ``latent``
        (B, Z) when given; with ``target`` frames (B, C, 64, 64) in [-1, 1] (what ``latent`` encodes) the recipe's
        reconstruction_weight x L1(fake, target) is added. Returns generator_loss (adversarial part) and, with a
        target, reconstruction."""
        model = self.model
        model.critic.requires_grad_(False)
        try:
            fake = model.generator(model.sample_latent(batch_size) if latent is None else latent)  # (B, C, 64, 64)
            loss = generator_loss(self.recipe.loss, model.critic(fake))
            metrics = {"generator_loss": loss.detach()}
            if target is not None and self.recipe.reconstruction_weight:
                reconstruction = (fake - target).abs().mean()
                loss = loss + self.recipe.reconstruction_weight * reconstruction
                metrics["reconstruction"] = reconstruction.detach()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        finally:
            model.critic.requires_grad_(True)
        return metrics
