"""V's encoder as a stable-baselines3 features extractor: any SB3 image policy reads V's latent of each frame.

    PPO("CnnPolicy", env, policy_kwargs={"features_extractor_class": VAEFeaturesExtractor,
                                         "features_extractor_kwargs": {"vae_path": "RUN/vae.pt"}})

What reaches the extractor: SB3 wraps an env whose frames are channels-last (64, 64, C) uint8 in
``VecTransposeImage``, so the policy's observation space, and the batches, are channels-first (B, C, 64, 64);
``predict`` transposes channels-last frames the same way. A policy built straight on a channels-last space
passes (B, 64, 64, C). Both layouts are accepted, told apart by the space's shape. SB3 divides uint8 image
spaces by 255 when the policy's ``normalize_images`` is True (its default); with ``normalize_images=False``
pass the same here and the extractor scales uint8 frames itself. V reads frames in [0, 1], as it was trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from worldmodels.checkpoint import load_vae

VAEFeatures = Literal["mu", "mu_logvar"]
FRAME_SIZE = 64


class VAEFeaturesExtractor(BaseFeaturesExtractor):
    """Frames (B, C, 64, 64) or (B, 64, 64, C) to V's posterior mean mu (B, Z), or [mu, logvar] (B, 2Z).

    :param observation_space: the policy's image space, (C, 64, 64) or (64, 64, C), C being V's channels.
    :param vae_path: V's checkpoint (``train-vae``); its weights are then saved with the policy.
    :param fine_tune: train V's encoder with the policy; False (default) freezes it (no gradients).
    :param features: "mu" (Z features, default) or "mu_logvar" (2Z).
    :param normalize_images: the policy's ``normalize_images``: whether SB3 already scaled uint8 frames to [0, 1].
    """

    def __init__(self, observation_space: spaces.Box, vae_path: str | Path, fine_tune: bool = False,
                 features: VAEFeatures = "mu", normalize_images: bool = True) -> None:
        if features not in ("mu", "mu_logvar"):
            raise ValueError(f"features must be 'mu' or 'mu_logvar', got {features!r}")
        vae = load_vae(vae_path)
        channels = vae.in_channels
        shape = tuple(observation_space.shape or ())
        if shape not in ((channels, FRAME_SIZE, FRAME_SIZE), (FRAME_SIZE, FRAME_SIZE, channels)):
            raise ValueError(f"V in {vae_path} encodes {FRAME_SIZE}x{FRAME_SIZE} frames of {channels} channel(s): the "
                             f"observation space must be ({channels}, {FRAME_SIZE}, {FRAME_SIZE}) or ({FRAME_SIZE}, "
                             f"{FRAME_SIZE}, {channels}), got {observation_space}")
        super().__init__(observation_space, vae.z_size * (1 if features == "mu" else 2))
        self.channels_last = shape != (channels, FRAME_SIZE, FRAME_SIZE)
        scaled_by_sb3 = normalize_images and is_image_space(observation_space)
        self.scale = 1.0 / 255.0 if observation_space.dtype == np.uint8 and not scaled_by_sb3 else 1.0
        self.encoder, self.fc_mu = vae.encoder, vae.fc_mu  # V's decoder is not kept
        self.fc_logvar = vae.fc_logvar if features == "mu_logvar" else None
        self.requires_grad_(fine_tune)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Features (B, Z) or (B, 2Z) of frames (B, C, 64, 64) or (B, 64, 64, C), as the space says."""
        x = observations.permute(0, 3, 1, 2) if self.channels_last else observations  # (B, C, 64, 64)
        h = self.encoder(x.float() * self.scale)  # (B, 1024)
        mu = self.fc_mu(h)  # (B, Z)
        if self.fc_logvar is None:
            return mu
        return torch.cat([mu, self.fc_logvar(h)], dim=1)  # (B, 2Z)
