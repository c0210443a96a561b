"""Frame wrappers: each applies one transform to a uint8 HWC image observation."""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image

Interpolation = Literal["nearest", "bilinear", "bicubic", "box"]
_PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
}


def _require_uint8_image(env: gym.Env, wrapper: str) -> tuple[int, int, int]:
    space = env.observation_space
    if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3):
        raise ValueError(f"{wrapper} needs a uint8 (H, W, C) Box observation space, got {space}")
    return space.shape  # type: ignore[return-value]


class CropFrame(gym.ObservationWrapper):
    """Keep rows ``[top, bottom)`` of each (H, W, C) frame (CarRacing: rows 0-84, dropping the dashboard)."""

    def __init__(self, env: gym.Env, top: int, bottom: int):
        super().__init__(env)
        height, width, channels = _require_uint8_image(env, "CropFrame")
        if not 0 <= top < bottom <= height:
            raise ValueError(f"CropFrame rows [{top}, {bottom}) must lie inside the frame's {height} rows")
        self.top, self.bottom = top, bottom
        self.observation_space = spaces.Box(0, 255, (bottom - top, width, channels), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.top : self.bottom]


class ResizeFrame(gym.ObservationWrapper):
    """Resize each (H, W, C) uint8 frame to (size, size, C) with Pillow."""

    def __init__(self, env: gym.Env, size: int, interpolation: Interpolation = "bilinear"):
        super().__init__(env)
        _, _, channels = _require_uint8_image(env, "ResizeFrame")
        if size < 1:
            raise ValueError(f"ResizeFrame size must be positive, got {size}")
        if interpolation not in _PIL_FILTERS:
            raise ValueError(f"ResizeFrame interpolation must be one of {sorted(_PIL_FILTERS)}, got {interpolation!r}")
        self.size = size
        self.filter = _PIL_FILTERS[interpolation]
        self.observation_space = spaces.Box(0, 255, (size, size, channels), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        image = Image.fromarray(np.ascontiguousarray(observation))
        return np.asarray(image.resize((self.size, self.size), self.filter), dtype=np.uint8)


class InvertFrame(gym.ObservationWrapper):
    """Invert colours: 255 - frame (the authors' optional CarRacing preprocessing)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        _require_uint8_image(env, "InvertFrame")

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return 255 - observation
