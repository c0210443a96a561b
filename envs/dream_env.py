"""Gymnasium environments inside M's dream: :class:`DreamEnv` (one dream) and :class:`DreamVectorEnv` (many
dreams stepped as one batch), built from a trained M, optionally V (to render), and an episode folder whose
latents files give the dreams' starting z.

Observation: the controller's input [z], [z, h] or [z, c, h] (the ``observation`` setting), float32.
Action: Box(-1, 1, (A,)), A being M's action size (actions outside are clipped). Reward and termination come
from :class:`worldmodels.dream.DreamSimulator`: M's reward head or +1 per step alive (``reward_mode``), and M's
done head (``done_mode``); without a done head a dream only ends by truncation (``max_episode_steps``).
``render()`` with ``render_mode="rgb_array"`` draws the current z with V's decoder, (64, 64, 3) uint8.

This module is the one place in ``envs`` that imports ``worldmodels``: the ids are registered in
``envs/__init__.py`` with string entry points, so importing ``envs`` does not import the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from worldmodels.config_schema import ControllerInputsName, DreamDoneName, DreamRewardName
from worldmodels.dream import DreamSettings, DreamSimulator, DreamSimulatorSpec, DreamState

RENDER_FPS = 50


def build_simulator(mdnrnn_path: str | Path, latents_folder: str | Path, vae_path: str | Path | None,
                    observation: ControllerInputsName, temperature: float, reward_mode: DreamRewardName,
                    done_mode: DreamDoneName, device: str, max_start_episodes: int | None,
                    render_mode: str | None) -> DreamSimulator:
    """The simulator behind a dream env (the arguments as in :class:`DreamEnv`)."""
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
    if render_mode == "rgb_array" and vae_path is None:
        raise ValueError("render_mode 'rgb_array' draws the dream with V's decoder: pass vae_path")
    settings = DreamSettings(temperature=temperature, reward_mode=reward_mode, done_mode=done_mode,
                             inputs=observation)
    spec = DreamSimulatorSpec(Path(mdnrnn_path), Path(latents_folder), None if vae_path is None else Path(vae_path),
                              settings, device, max_start_episodes)
    return spec()


def observation_space(simulator: DreamSimulator) -> spaces.Box:
    """One dream's observation space: the controller input (F,), float32, unbounded."""
    return spaces.Box(-np.inf, np.inf, (simulator.observation_size,), np.float32)


def action_space(simulator: DreamSimulator) -> spaces.Box:
    """One dream's action space: Box(-1, 1, (A,)), float32."""
    return spaces.Box(-1.0, 1.0, (simulator.action_size,), np.float32)


def as_actions(simulator: DreamSimulator, actions: np.ndarray, count: int) -> torch.Tensor:
    """``count`` actions as a (count, A) tensor on the simulator's device, clipped to [-1, 1]."""
    array = np.asarray(actions, np.float32)
    if array.size != count * simulator.action_size:
        raise ValueError(f"expected {count} action(s) of size {simulator.action_size}, got shape {array.shape}")
    clipped = np.clip(array.reshape(count, simulator.action_size), -1.0, 1.0)  # (count, A)
    return torch.as_tensor(clipped, device=simulator.device)


def seeded_generator(simulator: DreamSimulator, np_random: np.random.Generator) -> torch.Generator:
    """A torch generator for the simulator, seeded from an env's ``np_random``."""
    return simulator.generator(int(np_random.integers(2**63)))


def rgb(frames: np.ndarray) -> np.ndarray:
    """Frames (..., 64, 64, C) uint8 as RGB (..., 64, 64, 3): a grey V's single channel is repeated."""
    return frames if frames.shape[-1] == 3 else np.repeat(frames, 3, axis=-1)


class DreamEnv(gym.Env[np.ndarray, np.ndarray]):
    """One dream of M as a Gymnasium environment (registered as ``worldmodels/Dream-v0``).

    :param mdnrnn_path: M's checkpoint (``train-mdnrnn``).
    :param latents_folder: an episode folder with latents files (``encode``); dreams start from their first frames.
    :param vae_path: V's checkpoint, needed to render.
    :param observation: "z", "zh" or "zch": the observation is [z], [z, h] or [z, c, h].
    :param temperature: tau of M's sampling.
    :param reward_mode: "head" (M's reward head) or "survival" (+1 per step alive).
    :param done_mode: "logit" (done when the done logit > 0) or "sample" (with probability sigmoid(logit)).
    :param device: "auto", "cpu" or "cuda".
    :param max_start_episodes: read the first frames of at most this many episodes (None: all).
    :param render_mode: None or "rgb_array".
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}

    def __init__(self, mdnrnn_path: str | Path, latents_folder: str | Path, vae_path: str | Path | None = None,
                 observation: ControllerInputsName = "zh", temperature: float = 1.0,
                 reward_mode: DreamRewardName = "head", done_mode: DreamDoneName = "logit", device: str = "auto",
                 max_start_episodes: int | None = None,
                 render_mode: str | None = None) -> None:
        self.simulator = build_simulator(mdnrnn_path, latents_folder, vae_path, observation, temperature,
                                         reward_mode, done_mode, device, max_start_episodes, render_mode)
        self.render_mode = render_mode
        self.observation_space = observation_space(self.simulator)
        self.action_space = action_space(self.simulator)
        self._generator: torch.Generator | None = None
        self._state: DreamState | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self._generator is None:
            self._generator = seeded_generator(self.simulator, self.np_random)
        self._state = self.simulator.start(1, self._generator)
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._state is None or self._generator is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        noise = self.simulator.draw_noise(1, self._generator)
        step = self.simulator.step(self._state, as_actions(self.simulator, action, 1), noise)
        self._state = step.state
        return self._observation(), float(step.reward[0]), bool(step.done[0]), False, {}

    def render(self) -> np.ndarray | None:
        """The current z drawn by V's decoder, (64, 64, 3) uint8 (None without render_mode)."""
        if self.render_mode is None or self._state is None:
            return None
        return rgb(self.simulator.decode(self._state.z))[0]

    def _observation(self) -> np.ndarray:
        assert self._state is not None
        return self.simulator.features(self._state)[0].cpu().numpy()  # (F,)


class DreamVectorEnv(VectorEnv):
    """``num_envs`` dreams of one M stepped as one batch (``gymnasium.make_vec("worldmodels/Dream-v0", n, ...)``).

    Autoreset is Gymnasium's default, next-step: the step after a dream terminates or is truncated ignores
    that dream's action and returns its new start (reward 0, not terminated, not truncated). Dreams are
    truncated after ``max_episode_steps`` steps (None: never). Other parameters as in :class:`DreamEnv`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, mdnrnn_path: str | Path, latents_folder: str | Path,
                 vae_path: str | Path | None = None, observation: ControllerInputsName = "zh", temperature: float = 1.0,
                 reward_mode: DreamRewardName = "head", done_mode: DreamDoneName = "logit",
                 max_episode_steps: int | None = None, device: str = "auto", max_start_episodes: int | None = None,
                 render_mode: str | None = None) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.simulator = build_simulator(mdnrnn_path, latents_folder, vae_path, observation, temperature,
                                         reward_mode, done_mode, device, max_start_episodes, render_mode)
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self._limit = np.iinfo(np.int64).max if max_episode_steps is None else max_episode_steps
        self.single_observation_space = observation_space(self.simulator)
        self.single_action_space = action_space(self.simulator)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._generator: torch.Generator | None = None
        self._state: DreamState | None = None
        self._elapsed = np.zeros(num_envs, np.int64)  # (N,) steps since each dream's start
        self._restart = np.zeros(num_envs, bool)  # (N,) dreams that ended at the last step: restart at the next

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self._generator is None:
            self._generator = seeded_generator(self.simulator, self.np_random)
        self._state = self.simulator.start(self.num_envs, self._generator)
        self._elapsed[:] = 0
        self._restart[:] = False
        return self._observations(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._state is None or self._generator is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        noise = self.simulator.draw_noise(self.num_envs, self._generator)
        step = self.simulator.step(self._state, as_actions(self.simulator, actions, self.num_envs), noise)
        restart = self._restart
        self._state = self._restarted(step.state, restart) if restart.any() else step.state
        rewards = np.where(restart, 0.0, step.reward.cpu().numpy().astype(np.float64))  # (N,)
        terminated = step.done.cpu().numpy() & ~restart  # (N,)
        self._elapsed = np.where(restart, 0, self._elapsed + 1)
        truncated = ~restart & (self._elapsed >= self._limit)  # (N,)
        self._restart = terminated | truncated
        return self._observations(), rewards, terminated, truncated, {}

    def render(self) -> tuple[np.ndarray, ...] | None:
        """Every dream's current z drawn by V's decoder, (64, 64, 3) uint8 each (None without render_mode)."""
        if self.render_mode is None or self._state is None:
            return None
        return tuple(rgb(self.simulator.decode(self._state.z)))

    def _restarted(self, state: DreamState, restart: np.ndarray) -> DreamState:
        """``state`` with the dreams flagged in restart (N,) replaced by fresh starts."""
        assert self._generator is not None
        fresh = self.simulator.start(self.num_envs, self._generator)
        rows = torch.as_tensor(restart, device=self.simulator.device).unsqueeze(1)  # (N, 1)
        return DreamState(*(torch.where(rows, new, old) for new, old in zip(fresh, state)))

    def _observations(self) -> np.ndarray:
        assert self._state is not None
        return self.simulator.features(self._state).cpu().numpy()  # (N, F)
