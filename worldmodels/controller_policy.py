"""The world model as an agent in real envs: V encodes the frames, C acts on [z, h], M remembers; many envs at once.

This module is the one home of "V, M and C stepping real envs", batch-invariant (an episode's numbers do not depend
on which other episodes share its batch):

- :func:`controller_inputs`: V's z of a batch of frames (row by row, ``ConvVAE.encode_rowwise``) and C's input
  [z, h]; the SB3 latent envs (``agents.sb3_latent``) observe through it;
- :func:`world_model_actions`: one step of B agents (inputs, C's actions, M's next state);
- :class:`WorldModelAgents`: B episodes' controller rows, noise streams and M states, any subset of them (the
  episodes still running) stepped in one batch; the CMA-ES worker (:class:`worldmodels.real_rollouts.RealEnvWorker`)
  and the data policy below run their lock-stepped envs with it;
- :class:`WorldModelPolicySpec`: a trained controller as a ``rollouts`` data policy, so ``collect_episodes``
  gathers episodes with it, ``envs_per_worker`` envs per worker in lock-step, as the paper's iterative procedure
  does (``worldmodels run --iterations N``) and ``worldmodels collect --policy-run``; :func:`run_policy` reads one
  from a run folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from worldmodels.checkpoint import ModelWeights, load_mdnrnn, load_vae
from worldmodels.config_schema import ControllerConfig, ControllerInputsName
from worldmodels.controller import Controller, load_params
from worldmodels.mdnrnn import MDNRNN, LSTMState
from worldmodels.run_layout import CONTROLLER_DIR, MDNRNN_CHECKPOINT_NAME, MEAN_PARAMS_NAME, VAE_CHECKPOINT_NAME
from worldmodels.vae import ConvVAE


@torch.inference_mode()
def controller_inputs(vae: ConvVAE, layout: Controller, frames: np.ndarray, noise: torch.Tensor | None,
                      state: LSTMState) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, Z) of B frames and C's input x (B, F) in ``layout``'s order ([z], [z, h] or [z, c, h]).

    :param frames: (B, 64, 64, C) uint8 observations (read-only arrays are fine).
    :param noise: (B, Z) standard normal draws: z = mu + sigma * noise, as published; None: z = mu.
    :param state: M's (h, c), (1, B, H) each.
    """
    writable = np.require(frames, requirements="W")  # envs may hand out read-only views; torch wants writable
    x = torch.from_numpy(writable).to(vae.fc_mu.weight.device).permute(0, 3, 1, 2).float() / 255.0  # (B, C, 64, 64)
    mu, logvar = vae.encode_rowwise(x)  # (B, Z), each row independent of the others
    z = mu if noise is None else mu + torch.exp(0.5 * logvar) * noise  # (B, Z)
    h, c = state
    return z, layout.features(z, h[0], c[0])  # (B, Z), (B, F)


@torch.inference_mode()
def world_model_actions(vae: ConvVAE, mdnrnn: MDNRNN, controller: Controller, frames: np.ndarray,
                        params: torch.Tensor, noise: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
    """One step of B world-model agents: actions (B, A) in [-1, 1] and M's next state.

    :param frames: (B, 64, 64, C) uint8 observations.
    :param params: (B, D) controller rows, row i acting for frame i.
    :param noise: (B, Z) standard normal draws: C reads the SAMPLED z = mu + sigma * noise, as published.
    :param state: M's (h, c), (1, B, H) each, from before this step; returned unchanged when C reads z only.
    """
    z, x = controller_inputs(vae, controller, frames, noise, state)  # (B, Z), (B, F)
    actions = controller.act_population(params, x)  # (B, A)
    if controller.reads_memory:
        h, c = state
        state = mdnrnn.step(z, actions, (h.contiguous(), c.contiguous())).state
    return actions, state


class WorldModelAgents:
    """B episodes of world-model agents in lock-stepped envs: episode i acts with controller row ``params[i]``,
    draws its z noise from ``generators[i]`` and keeps its own M state; :meth:`act` steps any subset of them.

    Every part of a step is batch-invariant (V's heads row by row, M's LSTM step and C's broadcast product), so
    episode i's actions are bit for bit those it would take alone.
    """

    def __init__(self, vae: ConvVAE, mdnrnn: MDNRNN, controller: Controller, params: torch.Tensor,
                 generators: Sequence[torch.Generator]) -> None:
        """:param params: (B, D) controller rows. :param generators: B noise streams, one per episode."""
        if len(params) != len(generators):
            raise ValueError(f"{len(params)} controller rows for {len(generators)} noise generators: give one of "
                             "each per episode")
        self.vae, self.mdnrnn, self.controller = vae, mdnrnn, controller
        self.params = params
        self.generators = list(generators)
        self.h, self.c = mdnrnn.initial_state(len(params))  # (1, B, H) each

    @torch.inference_mode()
    def act(self, frames: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        """Actions (L, A) of episodes ``rows`` (L,) int, whose current frames are ``frames`` (L, 64, 64, C) uint8;
        steps their M states."""
        index = torch.from_numpy(np.asarray(rows, np.int64))  # (L,)
        noise = torch.stack([torch.randn(self.vae.z_size, generator=self.generators[i]) for i in rows])  # (L, Z)
        actions, (self.h[:, index], self.c[:, index]) = world_model_actions(
            self.vae, self.mdnrnn, self.controller, frames, self.params[index], noise,
            (self.h[:, index], self.c[:, index]))
        return actions


@dataclass(frozen=True)
class WorldModelPolicySpec:
    """A picklable recipe of :class:`WorldModelPolicy` (satisfies ``rollouts.collect.DataPolicySpec``).

    It carries V's and M's weights, read once on the driver (``ModelWeights.read(RUN/vae.pt, "vae")``), not their
    paths: the collecting workers may run on nodes that share no disk with the driver.
    """

    vae: ModelWeights
    mdnrnn: ModelWeights
    params: tuple[float, ...] = field(repr=False)
    """The controller's flat parameters (D,), e.g. RUN/controller/mean.npy."""
    inputs: ControllerInputsName = "zh"
    bias: bool = True
    hidden_units: int = 0
    action_noise: float = 0.0
    """Std of Gaussian noise added to C's actions (then clipped to [-1, 1]); 0 acts as C does."""
    name: str = "controller"
    """What the episode files record as their policy."""

    def make_batch(self, action_space: gym.Space, size: int) -> WorldModelPolicy:
        """The policy of up to ``size`` lock-stepped envs (one V, M and C serve any number of them)."""
        return WorldModelPolicy(self, action_space)


def run_policy(run_dir: Path, controller: ControllerConfig, action_noise: float, name: str) -> WorldModelPolicySpec:
    """The mean controller of ``run_dir`` (RUN/controller/mean.npy) with its V and M (RUN/vae.pt, RUN/mdnrnn.pt)
    as a data policy; ``controller`` is the layout it was trained with (the run's ``controller`` settings).

    :raises FileNotFoundError, ValueError: a file is missing, unreadable or not a controller (the messages name it).
    """
    params = load_params(run_dir / CONTROLLER_DIR / MEAN_PARAMS_NAME)
    return WorldModelPolicySpec(ModelWeights.read(run_dir / VAE_CHECKPOINT_NAME, "vae"),
                                ModelWeights.read(run_dir / MDNRNN_CHECKPOINT_NAME, "mdnrnn"),
                                tuple(float(p) for p in params), controller.inputs, controller.bias,
                                controller.hidden_units, action_noise, name=name)


class WorldModelPolicy:
    """V, M and C acting in any number of lock-stepped envs (``rollouts.collect.BatchedDataPolicy``): one V call
    and one M step per step for every episode still running.

    Episode i's randomness comes from its ``reset`` rng alone: its z noise from a torch generator seeded with the
    rng's first draw, its action noise from the rng; so an episode is the same whatever shares its batch.
    """

    def __init__(self, spec: WorldModelPolicySpec, action_space: gym.Space) -> None:
        self.vae, self.mdnrnn = load_vae(spec.vae), load_mdnrnn(spec.mdnrnn)
        if self.mdnrnn.z_size != self.vae.z_size:
            raise ValueError(f"{spec.mdnrnn.source} reads z of size {self.mdnrnn.z_size} but {spec.vae.source} "
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
        self._rngs: list[np.random.Generator] = []
        self._agents = self._start([])

    def _start(self, rngs: Sequence[np.random.Generator]) -> WorldModelAgents:
        generators = [torch.Generator().manual_seed(int(rng.integers(2**63))) for rng in rngs]
        return WorldModelAgents(self.vae, self.mdnrnn, self.controller, self.params.expand(len(rngs), -1), generators)

    def reset(self, rngs: Sequence[np.random.Generator]) -> None:
        self._rngs = list(rngs)
        self._agents = self._start(self._rngs)

    def __call__(self, observations: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Actions (L, A) float32 of episodes ``rows`` (L,) for their frames ``observations`` (L, 64, 64, C)."""
        actions = self._agents.act(observations, rows).numpy()  # (L, A)
        if self.action_noise:
            noise = np.stack([self._rngs[i].normal(0.0, self.action_noise, actions.shape[1:]) for i in rows])
            actions = np.clip(actions + noise, -1.0, 1.0)
        return actions.astype(np.float32)
