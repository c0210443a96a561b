"""The CarRacing frame pipeline: registration, spaces, frames, the action convention, seeding."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.carracing import CarRacingTanhActions, describe_lap
from envs.wrappers import CropFrame, ResizeFrame


@pytest.fixture
def env():
    env = gym.make("worldmodels/CarRacing-v0")
    yield env
    env.close()


def test_registered_spaces(env):
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    assert env.spec.max_episode_steps == 1000 and env.spec.reward_threshold == 900


def test_env_checker_passes(env):
    check_env(env.unwrapped, skip_render_check=True)
    check_env(gym.make("worldmodels/CarRacing-v0").env, skip_render_check=True)


def test_frames_are_the_cropped_resized_raw_frames():
    raw = gym.make("CarRacing-v3")
    wrapped = gym.make("worldmodels/CarRacing-v0", action_mode="native")
    raw_obs, _ = raw.reset(seed=5)
    obs, _ = wrapped.reset(seed=5)
    for _ in range(3):
        action = np.array([0.3, 0.5, 0.0], np.float32)
        raw_obs, *_ = raw.step(action)
        obs, *_ = wrapped.step(action)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    expected = ResizeFrame(CropFrame(raw, 0, 84), 64).observation(CropFrame(raw, 0, 84).observation(raw_obs))
    np.testing.assert_array_equal(obs, expected)


def test_same_seed_same_frames():
    a, b = gym.make("worldmodels/CarRacing-v0"), gym.make("worldmodels/CarRacing-v0")
    obs_a, _ = a.reset(seed=11)
    obs_b, _ = b.reset(seed=11)
    np.testing.assert_array_equal(obs_a, obs_b)
    for _ in range(5):
        obs_a, *_ = a.step(np.array([0.2, 1.0, -1.0], np.float32))
        obs_b, *_ = b.step(np.array([0.2, 1.0, -1.0], np.float32))
    np.testing.assert_array_equal(obs_a, obs_b)
    other, _ = gym.make("worldmodels/CarRacing-v0").reset(seed=12)
    assert not np.array_equal(gym.make("worldmodels/CarRacing-v0").reset(seed=11)[0], other)


def test_tanh_action_convention():
    wrapper = CarRacingTanhActions(gym.make("CarRacing-v3"))
    np.testing.assert_allclose(wrapper.action(np.array([-0.5, -1.0, -0.3])), [-0.5, 0.0, 0.0])
    np.testing.assert_allclose(wrapper.action(np.array([1.0, 0.0, 0.4])), [1.0, 0.5, 0.4])
    np.testing.assert_allclose(wrapper.action(np.array([2.0, 1.0, 1.0])), [1.0, 1.0, 1.0])


def test_options_and_bad_options():
    env = gym.make("worldmodels/CarRacing-v0", frame_size=32, invert_colors=True, crop_rows=0)
    assert env.observation_space.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="CropFrame rows"):
        gym.make("worldmodels/CarRacing-v0", crop_rows=200)
    with pytest.raises(ValueError, match="interpolation"):
        gym.make("worldmodels/CarRacing-v0", interpolation="lanczos9")
    with pytest.raises(ValueError, match="action_mode"):
        gym.make("worldmodels/CarRacing-v0", action_mode="discrete")


def test_lap_progress_counts_tiles_and_steps_off_the_road_and_resets():
    env = gym.make("worldmodels/CarRacingLowRes-v0")
    for _ in range(2):  # the second episode starts from zero again
        env.reset(seed=3)
        total, off_road = 0.0, []
        for step in range(160):
            steer = 0.0 if step < 40 else -1.0  # along the start straight, then hard left off the road
            _, reward, terminated, truncated, info = env.step(np.array([steer, 1.0, -1.0], np.float32))
            total += reward
            off_road.append(info["lap"]["off_road_steps"])
            assert not (terminated or truncated)
        lap = info["lap"]
        assert lap["steps"] == 160 and not lap["lap_finished"] and 0 < lap["tiles_visited"] < lap["track_tiles"]
        assert off_road[39] == 0 and off_road[-1] > 20 and np.all(np.diff(off_road) >= 0)
        # The reward is 1000 / track_tiles per tile visited and -0.1 per step: the lap's numbers explain the return.
        assert total == pytest.approx(1000 * lap["tiles_visited"] / lap["track_tiles"] - 0.1 * lap["steps"], abs=1e-6)
    assert describe_lap(info) == (f"{lap['tiles_visited']} of {lap['track_tiles']} tiles, no lap finished, "
                                  f"{lap['off_road_steps']} of 160 steps off the road")
    assert describe_lap({}) is None
