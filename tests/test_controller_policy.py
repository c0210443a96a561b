"""The trained world model as a data policy (the iterative procedure's gatherer), many lock-stepped envs at once."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rollouts.collect import run_episodes
from worldmodels.checkpoint import ModelWeights, load_mdnrnn, load_vae, save_untrained_checkpoint
from worldmodels.controller import Controller
from worldmodels.controller_policy import WorldModelAgents, WorldModelPolicySpec

SPACE = spaces.Box(-1.0, 1.0, (1,), np.float32)


@pytest.fixture
def spec(tmp_path) -> WorldModelPolicySpec:
    save_untrained_checkpoint(tmp_path / "vae.pt", "vae", {"z_size": 8})
    save_untrained_checkpoint(tmp_path / "mdnrnn.pt", "mdnrnn", {"z_size": 8, "action_size": 1, "hidden_size": 16})
    size = Controller(8, 16, 1, "zch", bias=False).num_params
    params = np.random.default_rng(0).normal(0.0, 1.0, size)
    return WorldModelPolicySpec(ModelWeights.read(tmp_path / "vae.pt", "vae"),
                                ModelWeights.read(tmp_path / "mdnrnn.pt", "mdnrnn"), tuple(params), inputs="zch",
                                bias=False)


def frames(count: int) -> np.ndarray:
    """Read-only frames (count, 64, 64, 3) uint8, as envs such as VizDoom hand them out."""
    stack = np.random.default_rng(1).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)
    stack.flags.writeable = False
    return stack


def test_actions_are_bounded_float32_a_function_of_the_reset_rng_and_read_only_frames_are_fine(spec):
    policy = spec.make_batch(SPACE, 1)

    def episode(seed: int) -> np.ndarray:
        policy.reset([np.random.default_rng(seed)])
        return np.concatenate([policy(frame[None], np.array([0])) for frame in frames(5)])

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on non-writable arrays
        first, again, other = episode(0), episode(0), episode(1)
    assert first.shape == (5, 1) and first.dtype == np.float32 and np.all(np.abs(first) <= 1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)  # the sampled z differs with the episode's rng


class SeededLengthFrames(gym.Env[np.ndarray, np.ndarray]):
    """Random (64, 64, 3) uint8 frames from the reset seed; the episode lasts 3 + seed % 5 steps."""

    observation_space = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    action_space = SPACE

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.steps, self.length = 0, 3 + (seed or 0) % 5
        return self.np_random.integers(0, 256, (64, 64, 3), dtype=np.uint8), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.steps += 1
        frame = self.np_random.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        return frame, float(action[0]), self.steps == self.length, False, {}


@pytest.mark.parametrize("action_noise", [0.0, 0.3])
def test_an_episode_is_the_same_bit_for_bit_alone_or_lockstepped_with_others(spec, action_noise):
    """Six episodes of different lengths stepped together (batch 6, then fewer as they end) equal each alone."""
    noisy = WorldModelPolicySpec(spec.vae, spec.mdnrnn, spec.params, "zch", False, action_noise=action_noise)
    seeds = [10, 11, 12, 13, 14, 15]
    together = run_episodes([SeededLengthFrames() for _ in seeds], noisy.make_batch(SPACE, 6), seeds)
    alone_policy, env = noisy.make_batch(SPACE, 1), SeededLengthFrames()
    assert len({episode.length for episode in together}) == 5
    for seed, episode in zip(seeds, together):
        (alone,) = run_episodes([env], alone_policy, [seed])
        for name in ("observations", "actions", "rewards", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(episode, name), getattr(alone, name), err_msg=name)


def test_lockstepped_agents_act_as_each_would_alone_and_refuse_mismatched_rows(spec):
    vae, mdnrnn = load_vae(spec.vae), load_mdnrnn(spec.mdnrnn)
    controller = Controller(8, 16, 1, "zch", bias=False)
    params = torch.randn(5, controller.num_params, generator=torch.Generator().manual_seed(0))  # (5, D)
    agents = WorldModelAgents(vae, mdnrnn, controller, params, [torch.Generator().manual_seed(s) for s in range(5)])
    alone = [WorldModelAgents(vae, mdnrnn, controller, params[i:i + 1], [torch.Generator().manual_seed(i)])
             for i in range(5)]
    views = frames(10)
    for step, rows in enumerate([np.arange(5), np.arange(5), np.array([0, 2, 4]), np.array([4])]):
        together = agents.act(views[step * 2 + rows % 2], rows)  # (L, 1)
        for row, action in zip(rows, together):
            torch.testing.assert_close(alone[row].act(views[step * 2 + row % 2][None], np.array([0]))[0], action,
                                       rtol=0, atol=0)
    with pytest.raises(ValueError, match="5 controller rows for 4 noise generators"):
        WorldModelAgents(vae, mdnrnn, controller, params, [torch.Generator()] * 4)


def test_action_noise_is_clipped_and_bad_settings_are_refused(spec):
    noisy = WorldModelPolicySpec(spec.vae, spec.mdnrnn, spec.params, "zch", False, action_noise=5.0)
    policy = noisy.make_batch(SPACE, 2)
    policy.reset([np.random.default_rng(0), np.random.default_rng(1)])
    actions = np.concatenate([policy(np.stack([frame, frame]), np.arange(2)) for frame in frames(20)])
    assert actions.shape == (40, 1) and np.all(np.abs(actions) <= 1) and np.any(np.abs(actions) == 1)
    with pytest.raises(ValueError, match="action_noise must be >= 0"):
        WorldModelPolicySpec(spec.vae, spec.mdnrnn, spec.params, "zch", False,
                             action_noise=-1).make_batch(SPACE, 1)
    with pytest.raises(ValueError, match="M was trained on 1 actions"):
        spec.make_batch(spaces.Box(-1.0, 1.0, (3,), np.float32), 1)
