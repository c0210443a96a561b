"""The world model as an agent: V encodes the frame, C acts on [z, h], M remembers; one env at a time.

:func:`world_model_actions` is the step every real-env rollout shares (the batched CMA-ES worker
:class:`worldmodels.real_rollouts.RealEnvWorker` and this module's data policy). :class:`WorldModelPolicySpec`
makes a trained controller a ``rollouts`` data policy, so ``collect_episodes`` gathers episodes with it, as
the paper's iterative procedure does (``worldmodels run --iterations N``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rollouts.policies import DataPolicy
from worldmodels.checkpoint import load_mdnrnn, load_vae
from worldmodels.controller import Controller, ControllerInputs
from worldmodels.mdnrnn import MDNRNN
from worldmodels.vae import ConvVAE


@torch.inference_mode()
def world_model_actions(vae: ConvVAE, mdnrnn: MDNRNN, controller: Controller, frames: np.ndarray,
                        params: torch.Tensor, noise: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                        ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One step of B world-model agents: actions (B, A) in [-1, 1] and M's next state.

    :param frames: (B, 64, 64, C) uint8 observations.
    :param params: (B, D) controller rows, row i acting for frame i.
    :param noise: (B, Z) standard normal draws: C reads the SAMPLED z = mu + sigma * noise, as published.
    :param state: M's (h, c), (1, B, H) each, from before this step; returned unchanged when C reads z only.
    """
    writable = np.require(frames, requirements="W")  # envs may hand out read-only views; torch wants writable
    x = torch.from_numpy(writable).permute(0, 3, 1, 2).float() / 255.0  # (B, C, 64, 64)
    mu, logvar = vae.encode_rowwise(x)  # (B, Z), each row independent of the others
    z = mu + torch.exp(0.5 * logvar) * noise  # (B, Z)
    h, c = state
    actions = controller.act_population(params, controller.features(z, h[0], c[0]))  # (B, A)
    if controller.reads_memory:
        state = mdnrnn.step(z, actions, (h.contiguous(), c.contiguous())).state
    return actions, state


@dataclass(frozen=True)
class WorldModelPolicySpec:
    """A picklable recipe of :class:`WorldModelPolicy` (satisfies ``rollouts.collect.DataPolicySpec``)."""

    vae_path: Path
    mdnrnn_path: Path
    params: tuple[float, ...] = field(repr=False)
    """The controller's flat parameters (D,), e.g. RUN/controller/mean.npy."""
    inputs: ControllerInputs = "zh"
    bias: bool = True
    hidden_units: int = 0
    action_noise: float = 0.0
    """Std of Gaussian noise added to C's actions (then clipped to [-1, 1]); 0 acts as C does."""
    name: str = "controller"
    """What the episode files record as their policy."""

    def make(self, action_space: gym.Space) -> DataPolicy:
        return WorldModelPolicy(self, action_space)


class WorldModelPolicy:
    """V, M and C acting in one env, one frame per call; an episode's noise comes from its ``reset`` rng."""

    def __init__(self, spec: WorldModelPolicySpec, action_space: gym.Space) -> None:
        self.vae, self.mdnrnn = load_vae(spec.vae_path), load_mdnrnn(spec.mdnrnn_path)
        if self.mdnrnn.z_size != self.vae.z_size:
            raise ValueError(f"{spec.mdnrnn_path} reads z of size {self.mdnrnn.z_size} but {spec.vae_path} "
                             f"encodes {self.vae.z_size}: they come from different runs")
        if action_space.shape != (self.mdnrnn.action_size,):
            raise ValueError(f"M was trained on {self.mdnrnn.action_size} actions but the env's action space is "
                             f"{action_space}")
        self.controller = Controller(self.vae.z_size, self.mdnrnn.hidden_size, self.mdnrnn.action_size,
                                     spec.inputs, spec.bias, spec.hidden_units)
        self.params = torch.tensor(spec.params, dtype=torch.float32).reshape(1, -1)  # (1, D)
        self.controller.check_flat(self.params)
        if spec.action_noise < 0:
            raise ValueError(f"action_noise must be >= 0, got {spec.action_noise}")
        self.action_noise = spec.action_noise
        self._rng = np.random.default_rng()
        self._generator = torch.Generator()
        self._state = self.mdnrnn.initial_state(1)

    def reset(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
        self._state = self.mdnrnn.initial_state(1)  # (1, 1, H) each

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        noise = torch.randn(1, self.vae.z_size, generator=self._generator)  # (1, Z)
        actions, self._state = world_model_actions(self.vae, self.mdnrnn, self.controller, observation[None],
                                                   self.params, noise, self._state)
        action = actions[0].numpy()  # (A,)
        if self.action_noise:
            action = np.clip(action + self._rng.normal(0.0, self.action_noise, action.shape), -1.0, 1.0)
        return action.astype(np.float32)
