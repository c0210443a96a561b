"""A real environment seen through V and M: :class:`LatentObservation` turns 64x64 frames into the controller's
input [z, h], so any stable-baselines3 algorithm (or anything else) can learn on latents.

The observation is the same vector the dream env (``worldmodels/Dream-v0``) and the CMA-ES controller read, in the
same layout (``worldmodels.controller.Controller.features``): [z], [z, h] or [z, c, h]. At step t it holds z_t,
V's encoding of frame t, and M's state h_t (c_t) from before M steps with (z_t, a_t), so a policy trained in the
dream acts in the real env through this wrapper.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from worldmodels.controller import Controller, ControllerInputs
from worldmodels.mdnrnn import MDNRNN, LSTMState
from worldmodels.vae import ConvVAE

LatentKind = Literal["mu", "sample"]


class LatentObservation(gym.Wrapper[np.ndarray, np.ndarray, np.ndarray, np.ndarray]):
    """Observation (F,) float32 = [z, h] (``inputs``) of a frame env's (64, 64, C) uint8 frames; actions unchanged.

    :param env: an env of 64x64 frames whose actions M was trained on (the ``worldmodels/`` envs).
    :param vae: V, encoding each frame to its posterior (mu, logvar).
    :param mdnrnn: M, stepped with (z_t, a_t) after every action to update h; reset sets h = c = 0.
    :param inputs: "z", "zh" (default) or "zch", as ``controller.inputs``.
    :param latent: "mu" (default): z is V's mean; "sample": z = mu + sigma * eps, the noise drawn from a generator
        seeded with the episode's seed (as the CMA-ES real-env worker does).
    """

    def __init__(self, env: gym.Env, vae: ConvVAE, mdnrnn: MDNRNN, inputs: ControllerInputs = "zh",
                 latent: LatentKind = "mu") -> None:
        super().__init__(env)
        if latent not in ("mu", "sample"):
            raise ValueError(f"latent must be 'mu' or 'sample', got {latent!r}")
        if mdnrnn.z_size != vae.z_size:
            raise ValueError(f"M reads z of size {mdnrnn.z_size} but V encodes {vae.z_size}: they come from "
                             "different runs")
        action_shape = env.action_space.shape
        if not isinstance(env.action_space, spaces.Box) or action_shape != (mdnrnn.action_size,):
            raise ValueError(f"M steps with actions of size {mdnrnn.action_size}, the env's action space is "
                             f"{env.action_space}")
        self.vae = vae.eval()
        self.mdnrnn = mdnrnn.eval()
        self.latent = latent
        self.layout = Controller(vae.z_size, mdnrnn.hidden_size, mdnrnn.action_size, inputs)
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.layout.input_size,), np.float32)
        self.device = next(vae.parameters()).device
        self._generator = torch.Generator(self.device)
        self._generator.seed()
        self._z = torch.zeros(1, vae.z_size, device=self.device)  # (1, Z) z_t
        self._state: LSTMState = mdnrnn.initial_state(1, self.device)  # (h_t, c_t), each (1, 1, H)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        frame, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._generator.manual_seed(seed)
        self._state = self.mdnrnn.initial_state(1, self.device)
        return self._observe(frame), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.layout.reads_memory:
            self._remember(action)
        frame, reward, terminated, truncated, info = self.env.step(action)
        return self._observe(frame), float(reward), terminated, truncated, info

    @torch.inference_mode()
    def _remember(self, action: np.ndarray) -> None:
        """Step M with (z_t, a_t), ``action`` (A,) clipped to the action space as the dream clips it."""
        space = self.action_space
        a = np.clip(np.asarray(action, np.float32).reshape(1, -1), space.low, space.high)  # (1, A)
        self._state = self.mdnrnn.step(self._z, torch.from_numpy(a).to(self.device), self._state).state

    @torch.inference_mode()
    def _observe(self, frame: np.ndarray) -> np.ndarray:
        """Encode ``frame`` (64, 64, C) uint8 to z_t and return [z_t, h_t] (F,) float32 (``inputs`` layout)."""
        pixels = torch.tensor(frame, device=self.device)  # (64, 64, C) uint8, a copy: env frames may be read-only
        x = pixels.permute(2, 0, 1)[None] / 255.0  # (1, C, 64, 64) in [0, 1]
        mu, logvar = self.vae.encode(x)  # (1, Z) each
        self._z = mu if self.latent == "mu" else ConvVAE.sample_latent(mu, logvar, self._generator)  # (1, Z)
        h, c = self._state  # (1, 1, H) each
        return self.layout.features(self._z, h[0], c[0])[0].cpu().numpy()  # (F,)
