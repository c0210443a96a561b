"""stable-baselines3 integration: V's encoder as a features extractor, the latent observation wrapper, SB3 agents
trained on latents and in the dream, saved, reloaded and evaluated, and the ``baseline`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import envs  # noqa: F401  (registers the worldmodels/ ids)
from agents.sb3 import algorithm_class, run_baseline
from agents.sb3_features import VAEFeaturesExtractor
from agents.sb3_latent import LatentObservation, LatentVecEnv
from rollouts.storage import episode_path, write_latents
from worldmodels.checkpoint import ModelWeights, load_mdnrnn, load_vae, save_untrained_checkpoint
from worldmodels.cli import main
from worldmodels.config import load_config
from worldmodels.config_schema import Config
from worldmodels.controller import Controller
from worldmodels.real_rollouts import RealEnvWorkerSpec
from worldmodels.stages import env_spec

Z, H, A = 8, 16, 3
ENV_ID = "worldmodels/CarRacingFast-v0"  # the published frames, ~3x faster to draw
TINY_PPO = "baseline.algo_kwargs={n_steps: 64, batch_size: 32, n_epochs: 1}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untrained tiny V and M (with a reward head) and 3 encoded episodes in RUN/episodes."""
    folder = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    save_untrained_checkpoint(folder / "vae.pt", "vae", {"z_size": Z})
    save_untrained_checkpoint(folder / "mdnrnn.pt", "mdnrnn", {"z_size": Z, "action_size": A, "hidden_size": H,
                                                               "reward_head": True})
    rng = np.random.default_rng(0)
    for index in range(3):
        write_latents(episode_path(folder / "episodes", index), rng.normal(size=(5, Z)).astype(np.float32),
                      np.full((5, Z), -4.0, np.float32))
        episode_path(folder / "episodes", index).write_bytes(b"")  # the episode file the latents belong to
    return folder


def tiny_config(*overrides: str) -> Config:
    return load_config("carracing-tiny", [f"env.id={ENV_ID}", "env.max_episode_steps=40", "dream.max_steps=40",
                                          "device=cpu", "baseline.n_envs=1", "baseline.timesteps=128", TINY_PPO,
                                          *overrides])


def frames(count: int) -> torch.Tensor:
    return torch.randint(0, 256, (count, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_features_extractor_reads_sb3s_channel_first_frames_and_gives_vs_mu(run: Path) -> None:
    vae = load_vae(run / "vae.pt")
    chw = frames(5).permute(0, 3, 1, 2).float() / 255  # (5, 3, 64, 64) in [0, 1], what the policy hands on
    with torch.no_grad():
        expected = vae.encode(chw)[0]  # (5, Z)
        sb3_scaled = VAEFeaturesExtractor(spaces.Box(0, 255, (3, 64, 64), np.uint8), run / "vae.pt")
        assert sb3_scaled.features_dim == Z
        torch.testing.assert_close(sb3_scaled(chw), expected)
        already_scaled = VAEFeaturesExtractor(spaces.Box(0.0, 1.0, (3, 64, 64), np.float32), run / "vae.pt",
                                              normalized_image=True)
        torch.testing.assert_close(already_scaled(chw), expected)
        both = VAEFeaturesExtractor(spaces.Box(0, 255, (3, 64, 64), np.uint8), run / "vae.pt", features="mu_logvar")
        assert both(chw).shape == (5, 2 * Z) and both.features_dim == 2 * Z
    with pytest.raises(ValueError, match=r"VAEFeaturesExtractor needs channel-first \(C, H, W\) observations"):
        VAEFeaturesExtractor(spaces.Box(0, 255, (64, 64, 3), np.uint8), run / "vae.pt")
    with pytest.raises(ValueError, match=r"the observation space must be \(3, 64, 64\)"):
        VAEFeaturesExtractor(spaces.Box(0, 255, (3, 96, 96), np.uint8), run / "vae.pt")


@pytest.mark.parametrize("fine_tune", [False, True])
def test_features_extractor_is_frozen_unless_fine_tuned(run: Path, fine_tune: bool) -> None:
    extractor = VAEFeaturesExtractor(spaces.Box(0, 255, (3, 64, 64), np.uint8), run / "vae.pt", fine_tune=fine_tune)
    parameters = list(extractor.parameters())
    assert parameters and all(p.requires_grad == fine_tune for p in parameters)
    features = extractor(frames(2).permute(0, 3, 1, 2).float() / 255)
    assert features.requires_grad == fine_tune
    if fine_tune:
        features.sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in parameters)


class NoiseFrames(gym.Env[np.ndarray, np.ndarray]):
    """Random (64, 64, 3) uint8 frames, one Box action, reward = the action's first value, 16 steps."""

    observation_space = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    action_space = spaces.Box(-1.0, 1.0, (A,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.steps = 0
        return self.observation_space.sample(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.steps += 1
        return self.observation_space.sample(), float(action[0]), False, self.steps >= 16, {}


def test_ppo_with_a_frozen_v_trains_only_its_head_and_reloads(run: Path, tmp_path: Path) -> None:
    kwargs = {"features_extractor_class": VAEFeaturesExtractor, "features_extractor_kwargs": {"vae_path": run / "vae.pt"}}
    model = PPO("CnnPolicy", NoiseFrames(), policy_kwargs=kwargs, n_steps=32, batch_size=16, n_epochs=1, device="cpu")
    assert model.policy.observation_space.shape == (3, 64, 64)  # SB3 put the env in VecTransposeImage
    before = {name: p.clone() for name, p in model.policy.named_parameters()}
    model.learn(64)
    changed = {name for name, p in model.policy.named_parameters() if not torch.equal(p, before[name])}
    assert changed and not any(name.startswith("features_extractor") for name in changed)
    model.save(tmp_path / "agent.zip")
    hwc = frames(4).numpy()  # (4, 64, 64, 3): predict transposes them as VecTransposeImage does
    np.testing.assert_array_equal(PPO.load(tmp_path / "agent.zip", device="cpu").predict(hwc, deterministic=True)[0],
                                  model.predict(hwc, deterministic=True)[0])


def latent_env(run: Path, **kwargs: object) -> LatentObservation:
    return LatentObservation(gym.make(ENV_ID, max_episode_steps=40), load_vae(run / "vae.pt"),
                             load_mdnrnn(run / "mdnrnn.pt"), **kwargs)


def test_latent_observation_is_z_and_the_h_m_reached(run: Path) -> None:
    env = latent_env(run)
    dream = gym.make("worldmodels/Dream-v0", mdnrnn_path=run / "mdnrnn.pt", latents_folder=run / "episodes",
                     device="cpu")
    assert env.observation_space == dream.observation_space and env.action_space.shape == dream.action_space.shape
    first, _ = env.reset(seed=3)
    assert first.shape == (Z + H,) and first.dtype == np.float32 and not first[Z:].any()  # h_0 = 0
    action = np.array([0.5, -0.2, 0.1], np.float32)
    second, *_ = env.step(action)
    mdnrnn = env.tracker.mdnrnn
    with torch.no_grad():
        step = mdnrnn.step(torch.from_numpy(first[None, :Z]), torch.from_numpy(action[None]), mdnrnn.initial_state(1))
    np.testing.assert_allclose(second[Z:], step.state[0][0, 0].numpy(), rtol=1e-5, atol=1e-6)
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(again, first)  # reset clears h
    sampled = latent_env(run, latent="sample")
    draws = [sampled.reset(seed=seed)[0] for seed in (3, 3, 4)]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0][:Z], first[:Z]) and not np.array_equal(draws[0], draws[2])
    assert latent_env(run, inputs="z").reset(seed=3)[0].shape == (Z,)


@pytest.mark.parametrize("latent", ["mu", "sample"])
def test_the_batched_latent_vec_env_observes_bit_for_bit_as_one_wrapper_per_env(run: Path, latent: str) -> None:
    """Three envs of 6-step episodes, 14 steps: every observation, the final ones of the auto-reset episodes
    included, equals the single-env wrappers' in SB3's DummyVecEnv on the same seeds."""
    vae, mdnrnn = load_vae(run / "vae.pt"), load_mdnrnn(run / "mdnrnn.pt")
    batched = LatentVecEnv(make_vec_env(lambda: gym.make(ENV_ID, max_episode_steps=6), n_envs=3), vae, mdnrnn,
                           latent=latent)
    single = make_vec_env(lambda: LatentObservation(gym.make(ENV_ID, max_episode_steps=6), vae, mdnrnn,
                                                    latent=latent), n_envs=3)
    assert batched.observation_space == single.observation_space
    batched.seed(7), single.seed(7)
    first = batched.reset()
    np.testing.assert_array_equal(first, single.reset())
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, (14, 3, A)).astype(np.float32)
    finished = 0
    for step in range(14):
        (obs, rewards, dones, infos), (expected, *rest) = batched.step(actions[step]), single.step(actions[step])
        np.testing.assert_array_equal(obs, expected)
        np.testing.assert_array_equal(rewards, rest[0])
        np.testing.assert_array_equal(dones, rest[1])
        for info, other in zip(infos, rest[2]):
            assert ("terminal_observation" in info) == ("terminal_observation" in other)
            if "terminal_observation" in info:
                np.testing.assert_array_equal(info["terminal_observation"], other["terminal_observation"])
                finished += 1
    assert finished == 6  # each env's episode ended at steps 6 and 12, and was reset
    batched.seed(7)
    np.testing.assert_array_equal(batched.reset(), first)  # reset clears h, seed restarts the noise
    with pytest.raises(ValueError, match="reads \\(64, 64, C\\) uint8 frames"):
        LatentVecEnv(single, vae, mdnrnn)


def test_a_controller_reading_the_latent_env_scores_the_cma_es_workers_return(run: Path, tmp_path: Path) -> None:
    """LatentObservation's [z, h] ("sample", seeded by the episode's seed) is what the CMA-ES worker's C reads."""
    config = tiny_config("env.max_episode_steps=12")
    worker = RealEnvWorkerSpec(env_spec(config), ModelWeights.read(run / "vae.pt", "vae"),
                               ModelWeights.read(run / "mdnrnn.pt", "mdnrnn"), num_envs=1)()
    controller = Controller(Z, H, A)
    params = np.random.default_rng(3).normal(0.0, 0.5, (1, controller.num_params)).astype(np.float32)
    env = LatentObservation(env_spec(config).make(), worker.vae, worker.mdnrnn, latent="sample")
    observation, _ = env.reset(seed=21)
    total, done = 0.0, False
    while not done:
        action = controller.act_population(torch.from_numpy(params), torch.from_numpy(observation[None]))[0]
        observation, reward, terminated, truncated, _ = env.step(action.numpy())
        total, done = total + reward, terminated or truncated
    assert total == worker.run(params, np.array([21]))[0]
    worker.close()


@pytest.mark.parametrize("obs", ["latent", "dream"])
def test_baseline_trains_saves_reloads_and_evaluates(run: Path, tmp_path: Path, obs: str) -> None:
    config = tiny_config(f"baseline.obs={obs}", "baseline.n_envs=2")
    result = run_baseline(config, run, out_dir=tmp_path, episodes=2)
    assert result.path == tmp_path / f"ppo_{obs}.zip" and result.agent.model.num_timesteps == 128
    assert result.agent.curve and all(steps <= 128 for steps, _ in result.agent.curve)
    report = json.loads(result.path.with_suffix(".json").read_text())
    assert report["episodes"] == 2 and report["seeds"] == [config.evaluate.seed, config.evaluate.seed + 1]
    assert report["mean"] == pytest.approx(np.mean(report["returns"]))
    loaded = PPO.load(result.path, device="cpu")
    observations = np.random.default_rng(0).normal(size=(10, Z + H)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=True)[0],
                                  result.agent.model.predict(observations, deterministic=True)[0])


def test_unknown_algorithm_and_missing_models_are_named(run: Path, tmp_path: Path) -> None:
    assert algorithm_class("sac").__name__ == "SAC"
    with pytest.raises(ValueError, match=r"unknown stable-baselines3 algorithm 'PPO2'.*offers: A2C, DDPG, DQN, PPO"):
        run_baseline(tiny_config("baseline.algo=PPO2"), run, out_dir=tmp_path)
    with pytest.raises(ValueError, match="DQN with MlpPolicy .* cannot learn this env"):
        run_baseline(tiny_config("baseline.algo=dqn"), run, out_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="vae.pt does not exist: run `worldmodels train-vae"):
        run_baseline(tiny_config("baseline.obs=dream"), tmp_path)


def test_baseline_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = [sys.executable, "-m", "worldmodels.cli", "baseline", "--preset", "carracing-tiny", "--run",
               str(tmp_path), "--algo", "ppo", "--obs", "pixels", "--timesteps", "128", "--episodes", "2",
               "--set", f"env.id={ENV_ID}", "--set", "env.max_episode_steps=30", "--set", "baseline.n_envs=2",
               "--set", "device=cpu", "--set", "baseline.algo_kwargs={n_steps: 32, batch_size: 32, n_epochs: 1}"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "baseline: PPO on pixels, 128 env steps" in done.stdout and "over 2 episodes" in done.stdout
    assert (tmp_path / "baselines" / "ppo_pixels.zip").is_file()
    assert json.loads((tmp_path / "baselines" / "ppo_pixels.json").read_text())["episodes"] == 2
    assert main(["baseline", "--run", str(tmp_path), "--algo", "nope"]) == 2
    assert "worldmodels baseline: error: unknown stable-baselines3 algorithm 'nope'" in capsys.readouterr().err
