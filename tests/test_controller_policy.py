"""The trained world model as a data policy (the iterative procedure's gatherer), one env frame at a time."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from worldmodels.checkpoint import save_untrained_checkpoint
from worldmodels.controller import Controller
from worldmodels.controller_policy import WorldModelPolicySpec


@pytest.fixture
def spec(tmp_path) -> WorldModelPolicySpec:
    save_untrained_checkpoint(tmp_path / "vae.pt", "vae", {"z_size": 8})
    save_untrained_checkpoint(tmp_path / "mdnrnn.pt", "mdnrnn", {"z_size": 8, "action_size": 1, "hidden_size": 16})
    size = Controller(8, 16, 1, "zch", bias=False).num_params
    params = np.random.default_rng(0).normal(0.0, 1.0, size)
    return WorldModelPolicySpec(tmp_path / "vae.pt", tmp_path / "mdnrnn.pt", tuple(params), inputs="zch", bias=False)


def frames(count: int) -> np.ndarray:
    """Read-only frames (count, 64, 64, 3) uint8, as envs such as VizDoom hand them out."""
    stack = np.random.default_rng(1).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)
    stack.flags.writeable = False
    return stack


def test_actions_are_bounded_float32_a_function_of_the_reset_rng_and_read_only_frames_are_fine(spec):
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    policy = spec.make(space)

    def episode(seed: int) -> np.ndarray:
        policy.reset(np.random.default_rng(seed))
        return np.stack([policy(frame) for frame in frames(5)])

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on non-writable arrays
        first, again, other = episode(0), episode(0), episode(1)
    assert first.shape == (5, 1) and first.dtype == np.float32 and np.all(np.abs(first) <= 1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)  # the sampled z differs with the episode's rng


def test_action_noise_is_clipped_and_bad_settings_are_refused(spec):
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    noisy = WorldModelPolicySpec(spec.vae_path, spec.mdnrnn_path, spec.params, "zch", False, action_noise=5.0)
    policy = noisy.make(space)
    policy.reset(np.random.default_rng(0))
    actions = np.stack([policy(frame) for frame in frames(20)])
    assert np.all(np.abs(actions) <= 1) and np.any(np.abs(actions) == 1)
    with pytest.raises(ValueError, match="action_noise must be >= 0"):
        WorldModelPolicySpec(spec.vae_path, spec.mdnrnn_path, spec.params, "zch", False, action_noise=-1).make(space)
    with pytest.raises(ValueError, match="M was trained on 1 actions"):
        spec.make(gym.spaces.Box(-1.0, 1.0, (3,), np.float32))
