"""Any encoder of :mod:`worldmodels.components.cnn` as a stable-baselines3 features extractor.

    from worldmodels.components.sb3 import EncoderFeaturesExtractor
    PPO("CnnPolicy", env, policy_kwargs={"features_extractor_class": EncoderFeaturesExtractor,
                                         "features_extractor_kwargs": {"encoder": "resnet", "features_dim": 256}})

This is the only module of ``worldmodels`` that imports stable-baselines3; import it only where SB3 is used.
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from worldmodels.components.cnn import make_encoder


class EncoderFeaturesExtractor(BaseFeaturesExtractor):
    """The named encoder over image observations: (B, C, H, W) floats in [0, 1] -> (B, features_dim).

    SB3 hands the extractor channel-first images already scaled to [0, 1] (``VecTransposeImage`` and
    ``normalize_images``), as it does for its own ``NatureCNN``.

    :param observation_space: a channel-first image Box, (C, H, W).
    :param encoder: a name of :data:`worldmodels.components.cnn.ENCODERS`.
    :param features_dim: features per observation.
    :param normalized_image: the observations are already floats in [0, 1] rather than uint8 (SB3's flag).
    """

    def __init__(self, observation_space: spaces.Box, encoder: str = "nature", features_dim: int = 256,
                 normalized_image: bool = False) -> None:
        if not is_image_space(observation_space, check_channels=False, normalized_image=normalized_image):
            raise ValueError(
                f"EncoderFeaturesExtractor needs an image observation space (a uint8 Box of shape (C, H, W) or "
                f"(H, W, C) with values 0 to 255), got {observation_space}; for float images in [0, 1] pass "
                "normalized_image=True in features_extractor_kwargs")
        if not is_image_space_channels_first(observation_space):
            raise ValueError(f"EncoderFeaturesExtractor needs channel-first (C, H, W) observations, got shape "
                             f"{observation_space.shape}; SB3 transposes image observations itself when the policy "
                             "is built by an algorithm, so build the extractor through policy_kwargs")
        super().__init__(observation_space, features_dim)
        channels, height, width = observation_space.shape
        self.encoder = make_encoder(encoder, channels, (height, width), features_dim)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """observations (B, C, H, W) in [0, 1] -> (B, features_dim)."""
        return self.encoder(observations)
