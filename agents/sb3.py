"""stable-baselines3 agents as baselines: trained on pixels, on V and M's latents, or in M's dream, then saved and
evaluated in the real env with the controllers' protocol.

``baseline.obs`` picks what the agent sees:

    pixels   CnnPolicy (SB3's NatureCNN) on the real env's (64, 64, 3) uint8 frames (SB3 transposes them to CHW)
    latent   MlpPolicy on [z, h] (``controller.inputs``) of the real env from RUN/vae.pt, RUN/mdnrnn.pt: trained in
             ``LatentVecEnv`` (one V call and one M step per step for all ``baseline.n_envs`` envs), evaluated on
             ``LatentObservation(real env)``, which gives the same observations
    dream    MlpPolicy trained in ``worldmodels/Dream-v0`` (M from RUN/mdnrnn.pt, dreams started from the encoded
             episodes), evaluated on ``LatentObservation(real env)``, whose observation is the dream's

Evaluation (:func:`evaluate_agent`) runs deterministic actions for N episodes on seeds ``evaluate.seed + i``
and reports mean +- std as :class:`agents.evaluation.EvaluationReport`. :func:`run_baseline` writes
``OUT/{algo}_{obs}.zip`` (SB3's format, atomically) and ``OUT/{algo}_{obs}.json`` (the report), OUT being
RUN/baselines by default. V and M inside the envs run on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import stable_baselines3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from agents.evaluation import EvaluationReport, evaluation_seeds
from agents.sb3_latent import LatentObservation, LatentVecEnv
from rollouts.atomic import atomic_path
from worldmodels.checkpoint import load_mdnrnn, load_vae
from worldmodels.config_schema import Config
from worldmodels.dream import dream_max_steps
from worldmodels.real_rollouts import RealEnvWorkerSpec
from worldmodels.run_layout import BASELINES_DIR, EPISODES_DIR
from worldmodels.stages import env_spec

"""Where a run folder keeps its baseline agents and their evaluations."""
DREAM_ENV_ID = "worldmodels/Dream-v0"


def algorithm_class(name: str) -> type[BaseAlgorithm]:
    """The algorithm of stable_baselines3's namespace called ``name``, in any case ("ppo", "SAC").

    :raises ValueError: there is no such algorithm; the message lists those there are.
    """
    algorithms = {key.lower(): value for key, value in vars(stable_baselines3).items()
                  if isinstance(value, type) and issubclass(value, BaseAlgorithm)}
    if name.lower() not in algorithms:
        known = ", ".join(sorted(cls.__name__ for cls in algorithms.values()))
        raise ValueError(f"unknown stable-baselines3 algorithm {name!r}; stable_baselines3 "
                         f"{stable_baselines3.__version__} offers: {known}")
    return algorithms[name.lower()]


@dataclass(frozen=True)
class BaselineSetup:
    """The policy a baseline learns, the env it trains in, and the real env it is evaluated in."""

    policy: str
    """"CnnPolicy" or "MlpPolicy"."""
    make_train_env: Callable[[], gym.Env]
    make_eval_env: Callable[[], gym.Env]
    wrap_train_envs: Callable[[VecEnv], VecEnv] | None = None
    """Wraps the vectorized train envs (latent: :class:`agents.sb3_latent.LatentVecEnv` over the frame envs)."""


def baseline_setup(config: Config, run_dir: Path, data_dir: Path) -> BaselineSetup:
    """The setup of ``config.baseline.obs`` for a run folder (``data_dir``: the dreams' encoded episodes).

    :raises FileNotFoundError: latent and dream need RUN/vae.pt and RUN/mdnrnn.pt (the message names the stage).
    """
    if config.baseline.obs == "pixels":
        env = env_spec(config)
        return BaselineSetup("CnnPolicy", env.make, env.make)
    spec = RealEnvWorkerSpec.for_run(config, run_dir)
    vae, mdnrnn = load_vae(spec.vae), load_mdnrnn(spec.mdnrnn)  # shared by the envs of this process

    def make_latent_env() -> gym.Env:
        return LatentObservation(spec.env.make(), vae, mdnrnn, config.controller.inputs, config.baseline.latent)

    if config.baseline.obs == "latent":
        return BaselineSetup("MlpPolicy", spec.env.make, make_latent_env, partial(
            LatentVecEnv, vae=vae, mdnrnn=mdnrnn, inputs=config.controller.inputs, latent=config.baseline.latent))
    dream = config.dream
    make_dream_env = partial(gym.make, DREAM_ENV_ID, max_episode_steps=dream_max_steps(config),
                             mdnrnn_path=spec.mdnrnn.source, latents_folder=data_dir,
                             observation=config.controller.inputs, temperature=dream.temperature,
                             reward_mode=dream.reward_mode, done_mode=dream.done_mode, device="cpu",
                             max_start_episodes=dream.start_episodes)
    return BaselineSetup("MlpPolicy", make_dream_env, make_latent_env)


class EpisodeReturns(BaseCallback):
    """Records every finished training episode as (steps taken so far, its return), from Monitor's infos."""

    def __init__(self) -> None:
        super().__init__()
        self.curve: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.curve.append((self.num_timesteps, float(info["episode"]["r"])))
        return True


@dataclass
class TrainedAgent:
    """An SB3 agent after training."""

    model: BaseAlgorithm
    curve: list[tuple[int, float]]
    """(steps taken when the episode ended, episode return) of every training episode; dream returns for dream."""
    seconds: float
    """Wall time of ``learn``."""


def train_agent(algorithm: type[BaseAlgorithm], setup: BaselineSetup, config: Config) -> TrainedAgent:
    """Train ``algorithm`` for ``baseline.timesteps`` steps in ``baseline.n_envs`` copies of the train env.

    :raises ValueError: the algorithm does not take ``baseline.algo_kwargs`` or the env's spaces.
    """
    settings = config.baseline
    envs = make_vec_env(setup.make_train_env, n_envs=settings.n_envs, seed=settings.seed)
    try:
        if setup.wrap_train_envs is not None:
            envs = setup.wrap_train_envs(envs)
            envs.seed(settings.seed)  # the first reset's seeds, as make_vec_env set them, now known to the wrapper
        try:
            model = algorithm(setup.policy, envs, seed=settings.seed, device=config.device, verbose=0,
                              **settings.algo_kwargs)
        except (TypeError, AssertionError) as err:
            raise ValueError(f"{algorithm.__name__} with {setup.policy} and baseline.algo_kwargs="
                             f"{settings.algo_kwargs} cannot learn this env: {err}") from None
        log = EpisodeReturns()
        start = time.perf_counter()
        model.learn(settings.timesteps, callback=log)
        return TrainedAgent(model, log.curve, time.perf_counter() - start)
    finally:
        envs.close()


def save_agent(model: BaseAlgorithm, path: str | Path) -> None:
    """Save ``model`` in SB3's zip format at ``path``, atomically (``type(model).load(path)`` reads it back)."""
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        model.save(file)


def episode_return(model: BaseAlgorithm, env: gym.Env, seed: int) -> float:
    """The return of one episode of ``model``'s deterministic actions in ``env``, reset with ``seed``."""
    observation, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action, _ = model.predict(observation, deterministic=True)
        observation, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    return total


def evaluate_agent(model: BaseAlgorithm, env: gym.Env, episodes: int, seed: int) -> EvaluationReport:
    """``episodes`` episodes of ``model`` in ``env`` on seeds ``seed .. seed + episodes - 1``: mean +- std."""
    seeds = evaluation_seeds(seed, episodes)
    return EvaluationReport.from_returns(np.array([episode_return(model, env, int(s)) for s in seeds]), seeds)


@dataclass
class BaselineResult:
    """A trained, saved and evaluated baseline."""

    agent: TrainedAgent
    report: EvaluationReport
    """Its real-env evaluation."""
    path: Path
    """The saved agent (.zip); the report is beside it (.json)."""


def run_baseline(config: Config, run_dir: str | Path, data_dir: str | Path | None = None,
                 out_dir: str | Path | None = None, episodes: int | None = None) -> BaselineResult:
    """Train ``config.baseline``'s agent, save it as OUT/{algo}_{obs}.zip and its evaluation on ``episodes``
    (default ``evaluate.episodes``) real episodes as OUT/{algo}_{obs}.json.

    :param data_dir: the encoded episodes whose first frames start the dreams (default RUN/episodes).
    :param out_dir: OUT (default RUN/baselines).
    """
    algorithm = algorithm_class(config.baseline.algo)
    run_dir = Path(run_dir)
    setup = baseline_setup(config, run_dir, Path(data_dir) if data_dir else run_dir / EPISODES_DIR)
    agent = train_agent(algorithm, setup, config)
    path = Path(out_dir or run_dir / BASELINES_DIR) / f"{algorithm.__name__.lower()}_{config.baseline.obs}.zip"
    save_agent(agent.model, path)
    env = setup.make_eval_env()
    try:
        report = evaluate_agent(agent.model, env, episodes or config.evaluate.episodes, config.evaluate.seed)
    finally:
        env.close()
    report.write_json(path.with_suffix(".json"))
    return BaselineResult(agent, report, path)
