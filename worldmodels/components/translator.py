"""An observation wrapper that passes every frame through a trained CycleGAN generator, so a controller trained
on one domain (A, e.g. CarRacing's normal colours) can act in the other (B, e.g. ``domain_randomize=True``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from worldmodels.checkpoint import ModelWeights, load_cyclegan
from worldmodels.components.cyclegan import CycleGAN
from worldmodels.components.gan import FRAME_SIZE


class CycleGANTranslator(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Frames (64, 64, C) uint8 of domain B -> (64, 64, C) uint8 of domain A through ``model.generator_ba``
    (``direction="ab"`` translates the other way), one frame per step, on the CPU.

    :param env: an env whose observation space is Box(0, 255, (64, 64, C), uint8).
    :param model: a trained :class:`CycleGAN` of C channels (see :meth:`from_checkpoint`).
    :raises ValueError: the observation space is not 64x64 uint8 frames of the model's channels.
    """

    def __init__(self, env: gym.Env, model: CycleGAN, direction: Literal["ab", "ba"] = "ba") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, model=model, direction=direction)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        expected = (FRAME_SIZE, FRAME_SIZE, model.channels)
        if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and space.shape == expected):
            raise ValueError(f"CycleGANTranslator needs Box(0, 255, {expected}, uint8) observations (the worldmodels/ "
                             f"env ids give 64x64 RGB frames), got {space}")
        if direction not in ("ab", "ba"):
            raise ValueError(f"direction must be 'ab' or 'ba', got {direction!r}")
        self.model = model.cpu().eval()
        self.direction = direction

    @classmethod
    def from_checkpoint(cls, env: gym.Env, path: str | Path | ModelWeights, direction: Literal["ab", "ba"] = "ba"
                        ) -> CycleGANTranslator:
        """Wrap ``env`` with the CycleGAN of a ``train-cyclegan`` checkpoint (RUN/cyclegan.pt), or of its weights
        already read (what a Ray worker gets)."""
        return cls(env, load_cyclegan(path), direction)

    @torch.inference_mode()
    def observation(self, observation: np.ndarray) -> np.ndarray:
        """(64, 64, C) uint8 -> (64, 64, C) uint8, the frame translated into the other domain."""
        return self.model.translate(np.asarray(observation, np.uint8)[None], self.direction)[0]
