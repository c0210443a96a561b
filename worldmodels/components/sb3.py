"""stable-baselines3 features extractors over image observations, and the one rule of what reaches them.

    from worldmodels.components.sb3 import EncoderFeaturesExtractor
    PPO("CnnPolicy", env, policy_kwargs={"features_extractor_class": EncoderFeaturesExtractor,
                                         "features_extractor_kwargs": {"encoder": "resnet", "features_dim": 256}})

The rule (:class:`ImageFeaturesExtractor`), SB3's own for its ``NatureCNN``: observations reach an extractor
channel-first, (B, C, H, W), with values in [0, 1]. An SB3 algorithm wraps an env of channels-last (H, W, C) uint8
frames in ``VecTransposeImage`` (and ``predict`` transposes such frames the same way), so the policy's observation
space is (C, H, W); the policy divides uint8 images by 255 (``normalize_images``, its default). A policy built with
``normalize_images=False`` passes observations as they are: its space must then hold floats already in [0, 1]
(``normalized_image=True`` in ``features_extractor_kwargs``).

This is the only module of ``worldmodels`` that imports stable-baselines3; import it only where SB3 is used.
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from worldmodels.components.cnn import make_encoder


class ImageFeaturesExtractor(BaseFeaturesExtractor):
    """Base of the image extractors: checks the observation space against the rule of this module (channel-first,
    values in [0, 1] once SB3 has scaled them) and keeps its shape as ``image_shape`` (C, H, W).

    :param observation_space: a channel-first image Box, (C, H, W).
    :param features_dim: features per observation.
    :param normalized_image: the observations are already floats in [0, 1] rather than uint8 (SB3's flag).
    """

    def __init__(self, observation_space: spaces.Box, features_dim: int, normalized_image: bool = False) -> None:
        name = type(self).__name__
        if not is_image_space(observation_space, check_channels=False, normalized_image=normalized_image):
            raise ValueError(
                f"{name} needs an image observation space (a uint8 Box of shape (C, H, W) or (H, W, C) with values "
                f"0 to 255), got {observation_space}; for float images in [0, 1] pass normalized_image=True in "
                "features_extractor_kwargs")
        if not is_image_space_channels_first(observation_space):
            raise ValueError(f"{name} needs channel-first (C, H, W) observations, got shape {observation_space.shape}; "
                             "SB3 transposes image observations itself when the policy is built by an algorithm, so "
                             "build the extractor through policy_kwargs")
        super().__init__(observation_space, features_dim)
        channels, height, width = observation_space.shape
        self.image_shape = (channels, height, width)


class EncoderFeaturesExtractor(ImageFeaturesExtractor):
    """The named encoder of :mod:`worldmodels.components.cnn` over image observations: (B, C, H, W) floats in
    [0, 1] -> (B, features_dim).

    :param observation_space: a channel-first image Box, (C, H, W).
    :param encoder: a name of :data:`worldmodels.components.cnn.ENCODERS`.
    :param features_dim: features per observation.
    :param normalized_image: the observations are already floats in [0, 1] rather than uint8 (SB3's flag).
    """

    def __init__(self, observation_space: spaces.Box, encoder: str = "nature", features_dim: int = 256,
                 normalized_image: bool = False) -> None:
        super().__init__(observation_space, features_dim, normalized_image)
        channels, height, width = self.image_shape
        self.encoder = make_encoder(encoder, channels, (height, width), features_dim)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """observations (B, C, H, W) in [0, 1] -> (B, features_dim)."""
        return self.encoder(observations)
