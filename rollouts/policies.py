"""Data-gathering policies: map an observation to an action, with per-episode randomness.

Every policy is reset at the start of an episode with that episode's ``numpy.random.Generator``, so an
episode's actions are a function of its seed alone.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from gymnasium import spaces

from rollouts.policy_names import POLICY_NAMES, DataPolicyName


class DataPolicy(Protocol):
    """What the rollout workers need of a policy."""

    def reset(self, rng: np.random.Generator) -> None:
        """Start an episode; all randomness until the next reset comes from ``rng``."""

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        """The action for ``observation``."""


def _require_box(space: spaces.Space, policy: str) -> spaces.Box:
    if not isinstance(space, spaces.Box) or not np.all(np.isfinite(space.low) & np.isfinite(space.high)):
        raise ValueError(f"the {policy} policy needs a bounded Box action space, got {space}; "
                         "use policy 'uniform' for other spaces")
    return space


class UniformPolicy:
    """Independent uniform samples from the action space every step (``action_space.sample()``)."""

    def __init__(self, action_space: spaces.Space):
        self.action_space = action_space

    def reset(self, rng: np.random.Generator) -> None:
        self.action_space.seed(int(rng.integers(2**31)))

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(self.action_space.sample())


class BrownianPolicy:
    """A random walk on the action: a_{t+1} = clip(a_t + sigma * (high - low) * N(0, 1), low, high).

    The walk starts at a uniform point; consecutive actions are correlated, so the car makes sustained
    turns and speeds instead of the dithering of uniform noise.
    """

    def __init__(self, action_space: spaces.Space, sigma: float = 0.1):
        if sigma <= 0:
            raise ValueError(f"brownian sigma must be positive, got {sigma}")
        self.space = _require_box(action_space, "brownian")
        self.sigma = sigma
        self._rng = np.random.default_rng()
        self._action = np.zeros(self.space.shape, np.float32)

    def reset(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._action = rng.uniform(self.space.low, self.space.high).astype(np.float32)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        span = self.space.high - self.space.low
        step = self.sigma * span * self._rng.standard_normal(self.space.shape)
        self._action = np.clip(self._action + step, self.space.low, self.space.high).astype(np.float32)
        return self._action.copy()


class RandomControllerPolicy:
    """The authors' data policy: a freshly initialised controller per episode.

    a = tanh(W x + b), rescaled from [-1, 1] to the action bounds, with W (A, F) and b (A,) drawn
    N(0, s^2) and s ~ U(0, weight_std) per episode (the authors' ``stdev = rand() * 0.01``). The
    authors' controller read z from an untrained V, whose sampled z is close to N(0, I) noise that
    varies a little with the frame; x here plays that role without a model: F features made of a fixed
    random projection of the downsampled grey frame plus N(0, 1) noise.
    """

    def __init__(self, action_space: spaces.Space, weight_std: float = 0.01, features: int = 32):
        if weight_std <= 0:
            raise ValueError(f"controller weight_std must be positive, got {weight_std}")
        self.space = _require_box(action_space, "random_controller")
        self.weight_std = weight_std
        self.features = features
        self._rng = np.random.default_rng()
        self._projection: np.ndarray | None = None
        self._weights = np.zeros((int(np.prod(self.space.shape)), features))
        self._bias = np.zeros(int(np.prod(self.space.shape)))

    def reset(self, rng: np.random.Generator) -> None:
        self._rng = rng
        scale = rng.uniform(0.0, self.weight_std)
        self._weights = rng.normal(0.0, scale, self._weights.shape)
        self._bias = rng.normal(0.0, scale, self._bias.shape)
        self._projection = None

    def _frame_features(self, observation: np.ndarray) -> np.ndarray:
        grey = np.asarray(observation, np.float32)
        grey = grey.mean(axis=-1) if grey.ndim == 3 else grey
        pixels = grey[::4, ::4].ravel() / 127.5 - 1.0
        if self._projection is None or self._projection.shape[1] != pixels.size:
            self._projection = self._rng.normal(0.0, 1.0 / np.sqrt(pixels.size), (self.features, pixels.size))
        return self._projection @ pixels

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        x = self._frame_features(observation) + self._rng.standard_normal(self.features)
        unit = np.tanh(self._weights @ x + self._bias).reshape(self.space.shape)
        low, high = self.space.low, self.space.high
        return (low + (unit + 1.0) * 0.5 * (high - low)).astype(self.space.dtype)


class RepeatedRandomPolicy:
    """The authors' Doom data policy: a uniform random action held for a random number of steps.

    Each new action is ``action_space.sample()``, held for k steps with k drawn uniformly from
    [min_repeat, max_repeat] (published: 1 to 10 frames). The authors' code redraws when the frame index is a
    multiple of the new k, which can cut a hold short; here every hold lasts exactly k steps (an episode's
    end may cut the last one).
    """

    def __init__(self, action_space: spaces.Space, min_repeat: int = 1, max_repeat: int = 10):
        if not 1 <= min_repeat <= max_repeat:
            raise ValueError(f"repeats must satisfy 1 <= min_repeat <= max_repeat, got {min_repeat}, {max_repeat}")
        self.action_space = action_space
        self.min_repeat, self.max_repeat = min_repeat, max_repeat
        self._rng = np.random.default_rng()
        self._action = np.empty(0)  # the first call of an episode draws the action
        self._steps_left = 0

    def reset(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.action_space.seed(int(rng.integers(2**31)))
        self._steps_left = 0

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        if self._steps_left == 0:
            self._action = np.asarray(self.action_space.sample())
            self._steps_left = int(self._rng.integers(self.min_repeat, self.max_repeat + 1))
        self._steps_left -= 1
        return self._action.copy()


def make_data_policy(
    name: DataPolicyName, action_space: spaces.Space, brownian_sigma: float = 0.1, controller_weight_std: float = 0.01,
    max_repeat: int = 10,
) -> DataPolicy:
    """Build a data policy by its config name (``uniform``, ``brownian``, ``random_controller`` or
    ``repeated_random``, which holds each action for 1 to ``max_repeat`` steps, published 10)."""
    if name == "uniform":
        return UniformPolicy(action_space)
    if name == "brownian":
        return BrownianPolicy(action_space, brownian_sigma)
    if name == "random_controller":
        return RandomControllerPolicy(action_space, controller_weight_std)
    if name == "repeated_random":
        return RepeatedRandomPolicy(action_space, max_repeat=max_repeat)
    raise ValueError(f"unknown data policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
