"""The faster CarRacing renderers: FastCarRacing's frames are bit-identical, LowResCarRacing's close."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pygame
import pytest
from gymnasium.envs.box2d.car_racing import PLAYFIELD
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.carracing import make_carracing
from envs.fast_carracing import FastCarRacing, reward_text
from envs.low_res_carracing import small_reward_text
from rollouts.policies import BrownianPolicy

FAST, LOW_RES = "worldmodels/FastCarRacing-v3", "worldmodels/LowResCarRacing-v3"
Step = tuple[np.ndarray, float, bool, bool]


def brownian_actions(env: gym.Env, seed: int, steps: int) -> list[np.ndarray]:
    """Observation-free actions, so every env of a comparison gets the same sequence."""
    if isinstance(env.action_space, gym.spaces.Discrete):
        return list(np.random.default_rng(seed).integers(env.action_space.n, size=steps))
    policy = BrownianPolicy(env.action_space, sigma=0.1)
    policy.reset(np.random.default_rng(seed))
    return [policy(np.empty(0)) for _ in range(steps)]


def play(env: gym.Env, seed: int | None, actions: list[np.ndarray]) -> list[Step]:
    """Reset (with ``seed``), then :func:`play_on`; the reset frame first."""
    observation, _ = env.reset(seed=seed)
    return [(observation, 0.0, False, False), *play_on(env, actions)]


def play_on(env: gym.Env, actions: list[np.ndarray]) -> list[Step]:
    """Step through ``actions`` until the episode ends: each frame, reward, terminated, truncated."""
    steps = []
    for action in actions:
        observation, reward, terminated, truncated, _ = env.step(action)
        steps.append((observation, float(reward), terminated, truncated))
        if terminated or truncated:
            break
    return steps


def assert_identical(expected: list[Step], actual: list[Step]) -> None:
    assert len(actual) == len(expected)
    for t, ((frame, *outcome), (same_frame, *same_outcome)) in enumerate(zip(expected, actual)):
        assert frame.shape == same_frame.shape == (96, 96, 3) and same_frame.dtype == np.uint8
        assert np.array_equal(frame, same_frame), f"frame {t} differs in {np.sum(frame != same_frame)} values"
        assert outcome == same_outcome, f"step {t}"


def teleport(env: gym.Env, x: float, y: float) -> None:
    """Move the car (hull and wheels together) so that its hull is at world (x, y)."""
    car = env.unwrapped.car
    dx, dy = x - car.hull.position[0], y - car.hull.position[1]
    for body in [car.hull, *car.wheels]:
        body.position = (body.position[0] + dx, body.position[1] + dy)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_frames_are_bit_identical_over_two_episodes(seed: int) -> None:
    original, fast = gym.make("CarRacing-v3"), gym.make(FAST)
    actions = brownian_actions(original, seed, 150)
    assert_identical(play(original, seed, actions), play(fast, seed, actions))
    assert_identical(play(original, None, actions[:50]), play(fast, None, actions[:50]))  # next track


@pytest.mark.slow
def test_fast_frames_are_bit_identical_over_a_whole_episode() -> None:
    original, fast = gym.make("CarRacing-v3"), gym.make(FAST)
    actions = brownian_actions(original, 10, 1000)
    expected = play(original, 10, actions)
    assert len(expected) == 1001 and expected[-1][3]  # truncated by the 1000-step limit
    assert_identical(expected, play(fast, 10, actions))


@pytest.mark.parametrize("options", [{"domain_randomize": True}, {"continuous": False}])
def test_fast_frames_are_bit_identical_with_options(options: dict) -> None:
    original, fast = gym.make("CarRacing-v3", **options), gym.make(FAST, **options)
    actions = brownian_actions(original, 7, 80)
    assert_identical(play(original, 7, actions), play(fast, 7, actions))
    assert_identical(play(original, 8, actions[:20]), play(fast, 8, actions[:20]))


def test_fast_frames_are_bit_identical_through_truncation() -> None:
    original, fast = (gym.make(env_id, max_episode_steps=40) for env_id in ("CarRacing-v3", FAST))
    actions = brownian_actions(original, 3, 100)
    expected = play(original, 3, actions)
    assert len(expected) == 41 and expected[-1][3]
    assert_identical(expected, play(fast, 3, actions))
    assert_identical(play(original, 4, actions), play(fast, 4, actions))


def test_fast_frames_are_bit_identical_at_the_playfield_edge_and_termination() -> None:
    """Near the edge the background no longer covers the window; leaving the field ends the episode."""
    original, fast = gym.make("CarRacing-v3"), gym.make(FAST)
    actions = brownian_actions(original, 5, 30)
    runs = []
    for env in (original, fast):
        steps = play(env, 5, actions[:10])
        teleport(env, PLAYFIELD - 5.0, 0.3 * PLAYFIELD)
        steps += play_on(env, actions[10:20])
        teleport(env, PLAYFIELD + 5.0, 0.3 * PLAYFIELD)
        steps += play_on(env, actions[20:])
        runs.append(steps)
    assert runs[0][-1][2] and runs[0][-1][1] == -100  # terminated, off the field
    assert_identical(*runs)


def test_fast_rgb_array_render_is_bit_identical() -> None:
    original, fast = (gym.make(env_id, render_mode="rgb_array") for env_id in ("CarRacing-v3", FAST))
    actions = brownian_actions(original, 9, 30)
    for env in (original, fast):
        play(env, 9, actions)
    image = original.render()
    assert image.shape == (400, 600, 3) and np.array_equal(image, fast.render())


def test_low_res_frames_are_close() -> None:
    """Mean absolute difference per value, over 2 seeds x 150 steps: ~0.7 when this test was written."""
    differences = []
    for seed in (0, 1):
        original, low_res = gym.make("CarRacing-v3"), gym.make(LOW_RES)
        actions = brownian_actions(original, seed, 150)
        expected, actual = play(original, seed, actions), play(low_res, seed, actions)
        assert [outcome for _, *outcome in actual] == [outcome for _, *outcome in expected]
        for (frame, *_), (low_res_frame, *_) in zip(expected, actual):
            assert low_res_frame.shape == (96, 96, 3) and low_res_frame.dtype == np.uint8
            differences.append(np.abs(frame.astype(np.int16) - low_res_frame).mean())
    assert np.mean(differences) < 1.5 and np.max(differences) < 5.0


@pytest.mark.parametrize("env_id", [FAST, LOW_RES])
def test_raw_ids(env_id: str) -> None:
    env = gym.make(env_id, domain_randomize=True)
    assert env.spec.max_episode_steps == 1000 and env.spec.reward_threshold == 900
    assert env.observation_space == gym.make("CarRacing-v3").observation_space
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", [FAST, LOW_RES])
def test_frames_survive_pygame_quit(env_id: str) -> None:
    """Closing a render_mode="human" CarRacing (as gymnasium's check_env does) calls pygame.quit(), which
    invalidates loaded fonts; the renderers load theirs again and draw the same frames."""
    env = gym.make(env_id)
    actions = brownian_actions(env, 0, 60)
    before = play(env, 0, actions)
    pygame.quit()
    reward_text.cache_clear()  # new counter texts must be drawn with the font loaded after the quit
    small_reward_text.cache_clear()
    assert_identical(before, play(gym.make(env_id), 0, actions))


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
@pytest.mark.parametrize("env_id", ["worldmodels/CarRacingFast-v0", "worldmodels/CarRacingLowRes-v0"])
def test_pipeline_ids(env_id: str) -> None:
    env = gym.make(env_id)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    assert env.spec.max_episode_steps == 1000
    check_env(env.env, skip_render_check=True)


def test_fast_pipeline_frames_equal_the_published_pipeline() -> None:
    original, fast = gym.make("worldmodels/CarRacing-v0"), gym.make("worldmodels/CarRacingFast-v0")
    actions = brownian_actions(original, 4, 40)
    for (frame, *_), (same_frame, *_) in zip(play(original, 4, actions), play(fast, 4, actions), strict=True):
        assert frame.shape == (64, 64, 3) and np.array_equal(frame, same_frame)


def test_make_carracing_renderer() -> None:
    assert isinstance(make_carracing(renderer="fast").unwrapped, FastCarRacing)
    with pytest.raises(ValueError, match="renderer"):
        make_carracing(renderer="opengl")  # type: ignore[arg-type]
