"""Controller rollouts in the real environment: one V and one M shared by several lock-stepped envs.

:class:`RealEnvWorker` satisfies ``agents.evaluators.RolloutWorker``: ``run(params (N, D), seeds (N,))``
returns the N episode returns. It steps up to ``num_envs`` environments at once (an env whose episode ends starts
the next waiting one), so each step V encodes every live frame in one batch and M advances every live rollout in
one batch
(:class:`worldmodels.controller_policy.WorldModelAgents`, the step every real-env rollout shares). As
published, C reads a SAMPLED z = mu + sigma * eps (each episode's noise from a generator seeded by its
episode seed, so a return does not depend on batching) and M's state h_t (and c_t for "zch") from before it
steps with (z_t, a_t).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rollouts.collect import EnvSpec
from worldmodels.checkpoint import ModelWeights, load_mdnrnn, load_vae
from worldmodels.components.translator import CycleGANTranslator
from worldmodels.config_schema import Config, ControllerInputsName
from worldmodels.controller import Controller
from worldmodels.controller_policy import WorldModelAgents
from worldmodels.run_layout import MDNRNN_CHECKPOINT_NAME, VAE_CHECKPOINT_NAME
from worldmodels.stages import env_spec


def world_model_paths(run_dir: Path) -> tuple[Path, Path]:
    """A run folder's V and M checkpoints: RUN/vae.pt and RUN/mdnrnn.pt.

    :raises FileNotFoundError: either is missing, naming the stage that makes it.
    """
    paths = run_dir / VAE_CHECKPOINT_NAME, run_dir / MDNRNN_CHECKPOINT_NAME
    for path, stage in zip(paths, ("train-vae", "train-mdnrnn")):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: run `worldmodels {stage} --run {run_dir}` first")
    return paths


@dataclass(frozen=True)
class RealEnvWorkerSpec:
    """A picklable factory of :class:`RealEnvWorker` (Ray builds the worker inside each actor).

    It carries V's and M's weights (and the translator's), read once on the driver, not their paths: a Ray node
    may share no disk with the driver, and the driver puts the spec in the object store once for all its actors.
    """

    env: EnvSpec
    vae: ModelWeights
    mdnrnn: ModelWeights
    inputs: ControllerInputsName = "zh"
    bias: bool = True
    num_envs: int = 4
    hidden_units: int = 0
    translator: ModelWeights | None = None
    """A ``train-cyclegan`` model whose B->A generator maps every frame before V sees it (env.translator)."""

    def __call__(self) -> RealEnvWorker:
        return RealEnvWorker(self)

    @property
    def num_params(self) -> int:
        """The number of controller parameters (D) that V's and M's sizes imply."""
        vae, mdnrnn = load_vae(self.vae), load_mdnrnn(self.mdnrnn)
        return Controller(vae.z_size, mdnrnn.hidden_size, mdnrnn.action_size, self.inputs, self.bias,
                          self.hidden_units).num_params

    @classmethod
    def for_run(cls, config: Config, run_dir: Path, num_envs: int | None = None) -> RealEnvWorkerSpec:
        """The worker of a run folder: its env, V and M read now from RUN/vae.pt and RUN/mdnrnn.pt, and controller
        settings; ``num_envs`` defaults to ``cmaes.envs_per_worker``.

        :raises FileNotFoundError: V or M is missing, naming the stage that makes it.
        :raises CheckpointError: V, M or the translator is not a readable checkpoint of its kind.
        """
        vae_path, mdnrnn_path = world_model_paths(run_dir)
        if config.env.translator and not Path(config.env.translator).is_file():
            raise FileNotFoundError(f"env.translator {config.env.translator} does not exist: train one with "
                                    "`worldmodels train-cyclegan`, or set env.translator=null")
        return cls(env_spec(config), ModelWeights.read(vae_path, "vae"), ModelWeights.read(mdnrnn_path, "mdnrnn"),
                   config.controller.inputs, config.controller.bias, num_envs or config.cmaes.envs_per_worker,
                   config.controller.hidden_units,
                   ModelWeights.read(config.env.translator, "cyclegan") if config.env.translator else None)


@dataclass(frozen=True)
class RecordedEpisode:
    """One real episode as :meth:`RealEnvWorker.record` ran it."""

    episode_return: float
    frames: np.ndarray
    """Every frame the controller saw, the first and the last included: (T + 1, 64, 64, C) uint8."""
    last_info: dict[str, Any]
    """The env's info from the episode's last step."""


class RealEnvWorker:
    """Holds V and M on the CPU and ``num_envs`` environments; runs controller rollouts in lock-step."""

    def __init__(self, spec: RealEnvWorkerSpec) -> None:
        self.vae = load_vae(spec.vae)
        self.mdnrnn = load_mdnrnn(spec.mdnrnn)
        if self.mdnrnn.z_size != self.vae.z_size:
            raise ValueError(f"{spec.mdnrnn.source} reads z of size {self.mdnrnn.z_size} but {spec.vae.source} "
                             f"encodes {self.vae.z_size}: they come from different runs")
        self.controller = Controller(self.vae.z_size, self.mdnrnn.hidden_size, self.mdnrnn.action_size,
                                     spec.inputs, spec.bias, spec.hidden_units)
        self.envs = [spec.env.make() for _ in range(spec.num_envs)]
        if spec.translator is not None:
            self.envs = [CycleGANTranslator.from_checkpoint(env, spec.translator) for env in self.envs]
        self.env_steps = 0
        """Environment steps taken by this worker so far."""

    @property
    def num_params(self) -> int:
        return self.controller.num_params

    def run(self, params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Returns (N,) float64 of one episode per row of params (N, D), episode n reset with seeds[n]."""
        self.controller.check_flat(params)
        return self._run_episodes(np.asarray(params, np.float32), seeds)

    def record(self, params: np.ndarray, seed: int) -> RecordedEpisode:
        """One episode of params (D,) from ``seed``, with its frames and its last step's info."""
        self.controller.check_flat(params)
        frames: list[np.ndarray] = []
        infos: list[dict[str, Any]] = []
        returns = self._run_episodes(np.asarray(params, np.float32)[None], np.array([seed]), frames, infos)
        return RecordedEpisode(float(returns[0]), np.stack(frames), infos[-1])  # an episode has one step at least

    def _run_episodes(self, params: np.ndarray, seeds: np.ndarray, recording: list[np.ndarray] | None = None,
                      infos: list[dict[str, Any]] | None = None) -> np.ndarray:
        """Episodes of params (N, D) from seeds (N,), up to ``num_envs`` at a time in lock-step; returns (N,).

        An env whose episode ends starts the next waiting one at the next step, so while episodes wait every step
        batches one per env, however unequal their lengths. ``recording``, when given, receives every frame
        episode 0 sees, the first and the last included, and ``infos`` the info of each of its steps.
        """
        count = len(params)
        # One noise stream per episode, so an episode's return does not depend on how rollouts are batched.
        generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        # a copy: params sent through Ray are read-only arrays
        agents = WorldModelAgents(self.vae, self.mdnrnn, self.controller, torch.tensor(params), generators)
        slots = np.arange(min(len(self.envs), count))  # the envs in use; env s runs episode episode_of[s]
        episode_of = slots.copy()
        frames = np.stack([self.envs[s].reset(seed=int(seeds[s]))[0] for s in slots])  # (S, 64, 64, C)
        if recording is not None:
            recording.append(frames[0].copy())
        returns = np.zeros(count)
        waiting = len(slots)  # the next episode to start
        live = slots  # the envs whose episode is running
        while len(live):
            actions = agents.act(frames[live], episode_of[live])  # (L, A)
            running = []
            for row, slot in enumerate(live):
                episode = episode_of[slot]
                frame, reward, terminated, truncated, info = self.envs[slot].step(actions[row].numpy())
                self.env_steps += 1
                returns[episode] += float(reward)
                if recording is not None and episode == 0:
                    recording.append(frame)
                if infos is not None and episode == 0:
                    infos.append(info)
                if terminated or truncated:
                    if waiting == count:
                        continue
                    episode_of[slot], waiting = waiting, waiting + 1
                    frame = self.envs[slot].reset(seed=int(seeds[episode_of[slot]]))[0]
                frames[slot] = frame
                running.append(slot)
            live = np.array(running, dtype=np.int64)
        return returns

    def close(self) -> None:
        for env in self.envs:
            env.close()
