"""An LSTM as a policy's memory: observation features -> LSTMCell -> action head, one step at a time, batched.

    obs (B, O) float32 -> LSTMCell(H): (h, c) (B, H) each -> Linear(H, A) -> "tanh": actions (B, A) in [-1, 1]
                                                                          -> "categorical": logits (B, A)

The state (h, c) carries what earlier observations showed, so the policy can act on information no longer in view
(a partially observable task). Like the World Models controller C, the policy exposes its parameters as one flat
vector (:attr:`LSTMPolicy.num_params`, :meth:`LSTMPolicy.set_flat_params`), so CMA-ES can evolve it; it is an
``nn.Module`` too, so gradients train it as well. :func:`run_episodes` runs it on a Gymnasium vector env.

Flat layout: the parameters in ``named_parameters()`` order (LSTMCell weight_ih (4H, O), weight_hh (4H, H),
bias_ih (4H,), bias_hh (4H,); head weight (A, H), bias (A,)), each row-major.
"""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

PolicyHead = Literal["tanh", "categorical"]
LSTMState = tuple[torch.Tensor, torch.Tensor]
"""(h, c), the LSTM's hidden and cell state, (B, H) each."""


class LSTMPolicy(nn.Module):
    """A recurrent policy; see the module docstring for the layers.

    :param obs_size: O, features per observation.
    :param action_size: A, action dimensions ("tanh") or discrete actions ("categorical").
    :param hidden_size: H, LSTM units.
    :param head: "tanh" for continuous actions in [-1, 1], "categorical" for one of A discrete actions.
    """

    def __init__(self, obs_size: int, action_size: int, hidden_size: int = 32, head: PolicyHead = "tanh") -> None:
        super().__init__()
        if head not in ("tanh", "categorical"):
            raise ValueError(f"the policy head must be 'tanh' or 'categorical', got {head!r}")
        self.obs_size = obs_size
        self.action_size = action_size
        self.hidden_size = hidden_size
        self.head_kind = head
        self.cell = nn.LSTMCell(obs_size, hidden_size)
        self.head = nn.Linear(hidden_size, action_size)

    def initial_state(self, batch: int) -> LSTMState:
        """Zero (h, c), (batch, H) each, on the policy's device."""
        zeros = torch.zeros(batch, self.hidden_size, device=self.head.weight.device)
        return zeros, zeros.clone()

    def forward(self, obs: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        """obs (B, O), state (h, c) -> (actions (B, A) in [-1, 1] for "tanh" or logits (B, A) for "categorical",
        the next state)."""
        if obs.ndim != 2 or obs.shape[1] != self.obs_size:
            raise ValueError(f"the policy takes observations of shape (B, {self.obs_size}), got {tuple(obs.shape)}")
        h, c = self.cell(obs, state)  # (B, H) each
        out = self.head(h)  # (B, A)
        return (torch.tanh(out) if self.head_kind == "tanh" else out), (h, c)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: LSTMState, sample: bool = False,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, LSTMState]:
        """One step without gradients: (actions, next state).

        Actions are (B, A) float32 in [-1, 1] for "tanh"; for "categorical" (B,) int64, the most likely action, or
        one drawn from softmax(logits) with ``sample`` (from ``generator``, or torch's global RNG).
        """
        out, state = self(obs.float(), state)
        if self.head_kind == "tanh":
            return out, state
        if sample:
            return torch.multinomial(torch.softmax(out, dim=-1), 1, generator=generator).squeeze(1), state
        return out.argmax(dim=-1), state

    @property
    def num_params(self) -> int:
        """D, the length of the flat parameter vector: 4H(O + H + 2) + A(H + 1)."""
        return sum(p.numel() for p in self.parameters())

    def get_flat_params(self) -> np.ndarray:
        """The parameters as one float32 vector (D,), in the module docstring's layout."""
        return parameters_to_vector(self.parameters()).detach().cpu().numpy().astype(np.float32)

    def set_flat_params(self, params: np.ndarray | torch.Tensor) -> None:
        """Load a flat vector (D,) (a CMA-ES candidate) into the parameters.

        :raises ValueError: ``params`` is not a vector of length :attr:`num_params`.
        """
        shape = tuple(params.shape)
        if shape != (self.num_params,):
            raise ValueError(f"an LSTMPolicy with O={self.obs_size}, H={self.hidden_size}, A={self.action_size} has "
                             f"{self.num_params} parameters; got a vector of shape {shape}")
        flat = torch.as_tensor(np.asarray(params, np.float32), device=self.head.weight.device)
        with torch.no_grad():
            vector_to_parameters(flat, self.parameters())


def run_episodes(policy: LSTMPolicy, envs: gym.vector.VectorEnv, episodes: int, seed: int | None = None,
                 sample: bool = False, generator: torch.Generator | None = None) -> np.ndarray:
    """Returns (episodes,) float64 of ``policy`` acting in ``envs``, whose observations are flat (N, O) vectors.

    Sub-env i plays (episodes + i) // N episodes (an even split, so short episodes are not favoured); a sub-env's
    LSTM state is reset when its episode ends. Both autoreset modes are handled: in "next step" mode (Gymnasium's
    default) the step that resets a finished sub-env is neither counted nor given to the policy's memory.
    Continuous actions are passed as the policy's [-1, 1] values.

    :param seed: seeds the first reset of the sub-envs (seed, seed + 1, ...).
    :param sample: draw categorical actions instead of taking the most likely.
    :raises ValueError: the env's autoreset mode is neither "next step" nor "same step".
    """
    mode = envs.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if mode not in (gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP):
        raise ValueError(f"run_episodes needs a vector env that resets finished episodes itself; its autoreset mode "
                         f"is {mode}")
    n = envs.num_envs
    targets = np.array([(episodes + i) // n for i in range(n)])
    counts = np.zeros(n, dtype=np.int64)
    running = np.zeros(n)
    returns: list[float] = []
    obs, _ = envs.reset(seed=seed)
    state = policy.initial_state(n)
    resetting = np.zeros(n, dtype=bool)  # sub-envs whose next step is an autoreset (next-step mode)
    device = policy.head.weight.device
    while (counts < targets).any():
        actions, state = policy.act(torch.as_tensor(obs, dtype=torch.float32, device=device), state, sample,
                                    generator)
        obs, rewards, terminated, truncated, _ = envs.step(actions.cpu().numpy())
        done = (terminated | truncated) & ~resetting
        running += np.where(resetting, 0.0, rewards)
        for i in np.flatnonzero(done & (counts < targets)):
            returns.append(float(running[i]))
            counts[i] += 1
        running[done] = 0.0
        fresh = done if mode == gym.vector.AutoresetMode.SAME_STEP else resetting
        keep = torch.as_tensor(~fresh, device=device).float().unsqueeze(1)  # (N, 1): 0 where a new episode begins
        state = (state[0] * keep, state[1] * keep)
        resetting = done if mode == gym.vector.AutoresetMode.NEXT_STEP else np.zeros(n, dtype=bool)
    return np.asarray(returns, dtype=np.float64)
