"""VizDoom TakeCover (registration, frames, the thirds action split, reward, cap, seeding, collection) and
the repeated-random data policy. The environment tests skip where vizdoom is not installed."""

import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import ray
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.doom import (
    ScreenObservation,
    ThirdsToDiscreteAction,
    _left_stay_right,
    _require_vizdoom,
    make_takecover,
)
from envs.wrappers import CropFrame, ResizeFrame
from rollouts.collect import EnvSpec, PolicySpec, collect_episodes
from rollouts.policies import RepeatedRandomPolicy, make_data_policy
from rollouts.policy_names import POLICY_NAMES
from rollouts.ray_cluster import init_ray
from rollouts.storage import episode_path, read_episode
from worldmodels.config import ConfigError, load_config

ID = "worldmodels/TakeCover-v0"
LEFT, STAY, RIGHT = np.array([-1.0], np.float32), np.array([0.0], np.float32), np.array([1.0], np.float32)


@pytest.fixture
def vizdoom(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ViZDoom writes its engine settings to ./_vizdoom.ini
    vizdoom = pytest.importorskip("vizdoom")
    pytest.importorskip("vizdoom.gymnasium_wrapper")  # registers VizdoomTakeCover-v1
    return vizdoom


@pytest.fixture
def env(vizdoom):
    env = gym.make(ID)
    yield env
    env.close()


def run(env: gym.Env, seed: int, actions: list[np.ndarray]) -> tuple[np.ndarray, list[float], bool, bool]:
    """Frames (1 + steps, 64, 64, 3) from reset(seed) then the actions (stopping at the episode's end)."""
    frames, rewards = [env.reset(seed=seed)[0]], []
    terminated = truncated = False
    for action in actions:
        observation, reward, terminated, truncated, _ = env.step(action)
        frames.append(observation)
        rewards.append(float(reward))
        if terminated or truncated:
            break
    return np.stack(frames), rewards, terminated, truncated


def test_registered_spaces(env):
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert env.spec.max_episode_steps == 2100 and env.spec.reward_threshold == 750


def test_env_checker_passes(env):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        check_env(env.env, skip_render_check=True)


def test_frames_are_the_cropped_resized_screen_and_change(env):
    raw = gym.make("VizdoomTakeCover-v1", screen_resolution="RES_160X120", render_hud=True)
    screen = ScreenObservation(raw)
    crop = CropFrame(screen, 0, 100)
    resize = ResizeFrame(crop, 64)
    left, stay, _ = _left_stay_right(raw.unwrapped)
    raw_obs, _ = raw.reset(seed=4)
    for action in [left] * 20 + [stay] * 2:
        raw_obs, *_ = raw.step(action)
    frames, _, _, _ = run(env, 4, [LEFT] * 20 + [STAY] * 2)
    assert frames.dtype == np.uint8 and frames.shape == (23, 64, 64, 3)
    np.testing.assert_array_equal(frames[-1], resize.observation(crop.observation(screen.observation(raw_obs))))
    # the player cannot move during the first ~7 tics; from then on strafing changes every frame
    assert all(not np.array_equal(a, b) for a, b in zip(frames[10:20], frames[11:21]))
    raw.close()


def test_thirds_split_and_its_boundaries(vizdoom):
    wrapper = make_takecover()
    assert isinstance(wrapper, ThirdsToDiscreteAction)
    game, button_map = wrapper.unwrapped.game, wrapper.unwrapped.button_map
    buttons = list(game.get_available_buttons())
    left, stay, right = wrapper.choices
    assert buttons[int(np.argmax(button_map[left]))] == vizdoom.Button.MOVE_LEFT and button_map[left].sum() == 1
    assert buttons[int(np.argmax(button_map[right]))] == vizdoom.Button.MOVE_RIGHT and button_map[right].sum() == 1
    assert button_map[stay].sum() == 0
    third = np.float32(1 / 3)
    cases = {-1.0: left, np.nextafter(-third, np.float32(-1)): left, -third: stay, 0.0: stay,
             third: stay, np.nextafter(third, np.float32(1)): right, 1.0: right}
    for value, expected in cases.items():
        assert wrapper.action(np.array([value], np.float32)) == expected, value
    assert wrapper.action(np.float32(-0.5)) == left
    with pytest.raises(ValueError, match="one value"):
        wrapper.action(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="Discrete"):
        ThirdsToDiscreteAction(gym.make("CarRacing-v3"), 0, 1, 2)
    with pytest.raises(ValueError, match="right=3"):
        ThirdsToDiscreteAction(wrapper.env, 0, 1, 3)
    wrapper.close()


def test_left_and_right_strafe_opposite_ways_and_stay_stands_still(env, vizdoom):
    game = env.unwrapped.game

    def displacement(action: np.ndarray) -> np.ndarray:
        env.reset(seed=0)
        start = np.array([game.get_game_variable(vizdoom.GameVariable.POSITION_X),
                          game.get_game_variable(vizdoom.GameVariable.POSITION_Y)])
        for _ in range(20):  # the player cannot move during the first ~7 tics
            env.step(action)
        end = np.array([game.get_game_variable(vizdoom.GameVariable.POSITION_X),
                        game.get_game_variable(vizdoom.GameVariable.POSITION_Y)])
        return end - start

    left, stay, right = displacement(LEFT), displacement(STAY), displacement(RIGHT)
    assert np.allclose(stay, 0) and np.linalg.norm(left) > 10 and np.linalg.norm(right) > 10
    assert np.dot(left, right) < 0


def test_reward_is_one_per_step_until_death(env):
    frames, rewards, terminated, truncated = run(env, 1, [STAY] * 2100)
    assert terminated and not truncated and 50 < len(rewards) < 2100
    assert rewards == [1.0] * len(rewards)
    assert not frames[-1].any() and frames[-2].any()  # ViZDoom has no screen after death


def test_step_cap(vizdoom):
    env = gym.make(ID, max_episode_steps=30)
    _, rewards, terminated, truncated = run(env, 2, [RIGHT] * 100)
    assert len(rewards) == 30 and truncated and not terminated
    env.close()


def test_same_seed_same_episode(vizdoom):
    actions = [np.array([a], np.float32) for a in np.random.default_rng(0).uniform(-1, 1, 120)]
    a, b = gym.make(ID), gym.make(ID)
    frames_a, rewards_a, *_ = run(a, 11, actions)
    frames_b, rewards_b, *_ = run(b, 11, actions)
    np.testing.assert_array_equal(frames_a, frames_b)
    assert rewards_a == rewards_b
    frames_c, *_ = run(a, 12, actions)  # the seed shows in when the monsters fire (after ~60 steps)
    steps = min(len(frames_a), len(frames_c))
    assert not np.array_equal(frames_a[:steps], frames_c[:steps])
    a.close()
    b.close()


def test_options(vizdoom):
    env = gym.make(ID, frame_size=32, paper_view=False, screen_resolution="RES_320X240", invert_colors=True)
    assert env.observation_space.shape == (32, 32, 3)
    assert env.reset(seed=0)[0].shape == (32, 32, 3)
    env.close()
    with pytest.raises(ValueError, match="screen_resolution"):
        gym.make(ID, screen_resolution="RES_1920X1080")


def test_missing_vizdoom_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "vizdoom.gymnasium_wrapper", None)
    with pytest.raises(ImportError, match="pip install vizdoom"):
        _require_vizdoom()


def hold_lengths(actions: list[np.ndarray]) -> list[int]:
    """Lengths of the runs of identical consecutive actions."""
    changes = [i for i in range(1, len(actions)) if not np.array_equal(actions[i], actions[i - 1])]
    bounds = [0, *changes, len(actions)]
    return [end - start for start, end in zip(bounds[:-1], bounds[1:])]


def test_repeated_random_holds_uniform_actions_for_1_to_10_steps():
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    policy = make_data_policy("repeated_random", space)
    assert isinstance(policy, RepeatedRandomPolicy) and "repeated_random" in POLICY_NAMES
    policy.reset(np.random.default_rng(3))
    actions = [policy(np.zeros((64, 64, 3), np.uint8)) for _ in range(3000)]
    lengths = hold_lengths(actions)[:-1]  # the last hold is cut by the end of the loop
    assert set(lengths) == set(range(1, 11))
    assert 5.0 < np.mean(lengths) < 6.0
    values = np.concatenate(actions)
    assert values.dtype == np.float32 and np.all(np.abs(values) <= 1.0)
    assert all(0.28 < np.mean(part) < 0.39 for part in (values < -1 / 3, np.abs(values) <= 1 / 3, values > 1 / 3))


def test_repeated_random_is_a_function_of_the_seed():
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    policy = RepeatedRandomPolicy(space)

    def episode(seed: int) -> np.ndarray:
        policy.reset(np.random.default_rng(seed))
        return np.stack([policy(np.zeros(1)) for _ in range(50)])

    first = episode(5)
    episode(6)
    np.testing.assert_array_equal(episode(5), first)
    assert not np.array_equal(episode(6), first)
    with pytest.raises(ValueError, match="min_repeat"):
        RepeatedRandomPolicy(space, min_repeat=0)


def test_repeated_random_is_a_config_choice_with_a_hold_length_setting():
    assert load_config(overrides=["collect.policy=repeated_random"]).collect.policy == "repeated_random"
    config = load_config("doom-tiny", ["collect.max_repeat=40"])
    assert load_config("doom-tiny").collect.max_repeat == 10  # published
    policy = PolicySpec("repeated_random", max_repeat=config.collect.max_repeat).make(
        gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
    policy.reset(np.random.default_rng(0))
    lengths = hold_lengths([policy(np.zeros(1)) for _ in range(4000)])[:-1]
    assert max(lengths) == 40 and min(lengths) == 1 and 18 < np.mean(lengths) < 23
    with pytest.raises(ConfigError, match="'collect.max_repeat'"):
        load_config("doom-tiny", ["collect.max_repeat=0"])


def test_collect_one_takecover_episode(tmp_path, vizdoom):
    started_ray = not ray.is_initialized()
    init_ray(num_cpus=1)
    spec = EnvSpec(ID, max_episode_steps=25)
    try:
        report = collect_episodes(tmp_path / "episodes", spec, PolicySpec("repeated_random"), episodes=1, seed=3,
                                  num_workers=1, progress=False)
    finally:
        if started_ray:
            ray.shutdown()
    assert report.collected == 1 and report.frames == 26
    episode = read_episode(episode_path(tmp_path / "episodes", 0))
    assert episode.observations.shape == (26, 64, 64, 3) and episode.observations.dtype == np.uint8
    assert episode.actions.shape == (25, 1) and episode.actions.dtype == np.float32
    assert np.all(episode.rewards == 1.0) and episode.truncated[-1] and not episode.terminated.any()
    assert episode.meta["env_id"] == ID and episode.meta["policy"] == "repeated_random"
