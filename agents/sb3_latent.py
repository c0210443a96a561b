"""Real environments seen through V and M: 64x64 frames become the controller's input [z, h], so any
stable-baselines3 algorithm (or anything else) can learn on latents.

:class:`LatentObservation` wraps one Gymnasium env; :class:`LatentVecEnv` wraps an SB3 ``VecEnv`` of B envs (SB3's
plug-in point for transforms of vectorized envs, as ``VecTransposeImage``) and encodes all B frames in one V call
and steps M once for the batch. Both observe through :class:`LatentTracker`, whose encoding is the CMA-ES worker's
(``worldmodels.controller_policy.controller_inputs``: V's heads row by row), so for the same seeds the two give the
same observations bit for bit, and those equal what the CMA-ES controller reads.

The observation is the same vector the dream env (``worldmodels/Dream-v0``) and the CMA-ES controller read, in the
same layout (``worldmodels.controller.Controller.features``): [z], [z, h] or [z, c, h]. At step t it holds z_t,
V's encoding of frame t, and M's state h_t (c_t) from before M steps with (z_t, a_t), so a policy trained in the
dream acts in the real env through these wrappers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from worldmodels.config_schema import BaselineLatentName, ControllerInputsName
from worldmodels.controller import Controller
from worldmodels.controller_policy import controller_inputs
from worldmodels.mdnrnn import MDNRNN
from worldmodels.vae import ConvVAE


class LatentTracker:
    """V and M following B envs: z of each env's current frame and M's state, read as the controller's input.

    :param vae: V, encoding each frame to its posterior (mu, logvar).
    :param mdnrnn: M, stepped with (z_t, a_t) after every action to update h; a restarted env gets h = c = 0.
    :param action_space: the envs' Box of M's actions; actions are clipped to it before M reads them, as the
        dream clips them.
    :param inputs: "z", "zh" (default) or "zch", as ``controller.inputs``.
    :param latent: "mu" (default): z is V's mean; "sample": z = mu + sigma * eps, each env's noise from its own
        generator, seeded by its episode's seed (as the CMA-ES real-env worker does).
    :param num_envs: B.
    """

    def __init__(self, vae: ConvVAE, mdnrnn: MDNRNN, action_space: gym.Space, inputs: ControllerInputsName = "zh",
                 latent: BaselineLatentName = "mu", num_envs: int = 1) -> None:
        if latent not in get_args(BaselineLatentName):
            raise ValueError(f"latent must be one of {get_args(BaselineLatentName)}, got {latent!r}")
        if mdnrnn.z_size != vae.z_size:
            raise ValueError(f"M reads z of size {mdnrnn.z_size} but V encodes {vae.z_size}: they come from "
                             "different runs")
        if not isinstance(action_space, spaces.Box) or action_space.shape != (mdnrnn.action_size,):
            raise ValueError(f"M steps with actions of size {mdnrnn.action_size}, the env's action space is "
                             f"{action_space}")
        self.vae = vae.eval()
        self.mdnrnn = mdnrnn.eval()
        self.action_space = action_space
        self.latent = latent
        self.layout = Controller(vae.z_size, mdnrnn.hidden_size, mdnrnn.action_size, inputs)
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.layout.input_size,), np.float32)
        self.device = next(vae.parameters()).device
        self.generators = [torch.Generator(self.device) for _ in range(num_envs)]
        for generator in self.generators:
            generator.seed()
        self.z = torch.zeros(num_envs, vae.z_size, device=self.device)  # (B, Z) z_t
        self.h, self.c = mdnrnn.initial_state(num_envs, self.device)  # (1, B, H) each

    @torch.inference_mode()
    def restart(self, rows: Sequence[int], seeds: Sequence[int | None]) -> None:
        """Envs ``rows`` started new episodes: clear their M state and seed their noise (a None seed keeps the
        generator's stream going)."""
        for row, seed in zip(rows, seeds):
            if seed is not None:
                self.generators[row].manual_seed(int(seed))
        index = torch.as_tensor(np.asarray(rows, np.int64), device=self.device)
        self.h[:, index] = 0.0
        self.c[:, index] = 0.0

    @torch.inference_mode()
    def observe(self, frames: np.ndarray, rows: Sequence[int]) -> np.ndarray:
        """Encode the frames (L, 64, 64, C) uint8 of envs ``rows`` (L,) to their z_t, in one V call; returns
        [z_t, h_t] (L, F) float32 (``inputs`` layout)."""
        index = torch.as_tensor(np.asarray(rows, np.int64), device=self.device)
        noise = None if self.latent == "mu" else torch.stack(
            [torch.randn(self.vae.z_size, generator=self.generators[row], device=self.device) for row in rows])
        z, x = controller_inputs(self.vae, self.layout, frames, noise, (self.h[:, index], self.c[:, index]))
        self.z[index] = z  # (L, Z)
        return x.cpu().numpy()  # (L, F)

    @torch.inference_mode()
    def remember(self, actions: np.ndarray) -> None:
        """Step M for every env with (z_t, a_t), ``actions`` (B, A); nothing when C reads z only."""
        if not self.layout.reads_memory:
            return
        space = self.action_space
        a = np.clip(np.asarray(actions, np.float32).reshape(len(self.z), -1), space.low, space.high)  # (B, A)
        self.h, self.c = self.mdnrnn.step(self.z, torch.from_numpy(a).to(self.device), (self.h, self.c)).state


class LatentObservation(gym.Wrapper[np.ndarray, np.ndarray, np.ndarray, np.ndarray]):
    """Observation (F,) float32 = [z, h] (``inputs``) of a frame env's (64, 64, C) uint8 frames; actions unchanged.

    :param env: an env of 64x64 frames whose actions M was trained on (the ``worldmodels/`` envs).
    :param vae, mdnrnn, inputs, latent: as :class:`LatentTracker`; the noise of "sample" is seeded by ``reset``'s
        seed.
    """

    def __init__(self, env: gym.Env, vae: ConvVAE, mdnrnn: MDNRNN, inputs: ControllerInputsName = "zh",
                 latent: BaselineLatentName = "mu") -> None:
        super().__init__(env)
        self.tracker = LatentTracker(vae, mdnrnn, env.action_space, inputs, latent)
        self.observation_space = self.tracker.observation_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        frame, info = self.env.reset(seed=seed, options=options)
        self.tracker.restart([0], [seed])
        return self.tracker.observe(frame[None], [0])[0], info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.tracker.remember(np.asarray(action)[None])
        frame, reward, terminated, truncated, info = self.env.step(action)
        return self.tracker.observe(frame[None], [0])[0], float(reward), terminated, truncated, info


class LatentVecEnv(VecEnvWrapper):
    """:class:`LatentObservation` for all envs of an SB3 ``VecEnv`` at once: each step one V call encodes every
    env's frame and M steps every env in one batch; observations (B, F) float32.

    Seeds reach it as any VecEnv's, through :meth:`seed` before a reset (``make_vec_env(..., seed=s)`` seeds the
    envs inside, so call ``seed(s)`` on this wrapper too, or let the algorithm do it). An env that finishes is
    reset by the VecEnv; its ``infos[i]["terminal_observation"]`` becomes the latent of its last frame.
    """

    def __init__(self, venv: VecEnv, vae: ConvVAE, mdnrnn: MDNRNN, inputs: ControllerInputsName = "zh",
                 latent: BaselineLatentName = "mu") -> None:
        if venv.observation_space.dtype != np.uint8 or len(venv.observation_space.shape) != 3:
            raise ValueError(f"LatentVecEnv reads (64, 64, C) uint8 frames, the envs observe {venv.observation_space}: "
                             "wrap the frame envs themselves, before any image transpose or frame stack")
        self.tracker = LatentTracker(vae, mdnrnn, venv.action_space, inputs, latent, venv.num_envs)
        super().__init__(venv, observation_space=self.tracker.observation_space)
        self.rows = np.arange(self.num_envs)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        self._seeds = list(self.venv.seed(seed))
        return self._seeds

    def reset(self) -> VecEnvObs:
        frames = self.venv.reset()  # (B, 64, 64, C)
        self.tracker.restart(self.rows, self._seeds)
        self._reset_seeds()
        return self.tracker.observe(frames, self.rows)

    def step_async(self, actions: np.ndarray) -> None:
        self.tracker.remember(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        frames, rewards, dones, infos = self.venv.step_wait()
        finished = np.flatnonzero(dones)
        if len(finished):
            last = np.stack([infos[row]["terminal_observation"] for row in finished])  # (L, 64, 64, C)
            for row, observation in zip(finished, self.tracker.observe(last, finished)):
                infos[row]["terminal_observation"] = observation
            self.tracker.restart(finished, [None] * len(finished))
        return self.tracker.observe(frames, self.rows), rewards, dones, infos
