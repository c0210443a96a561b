"""C: the linear controller a = tanh(W x + b) that CMA-ES evolves, as one flat parameter vector.

x is [z], [z, h] or [z, c, h] (the ``inputs`` setting; h and c are M's LSTM hidden and cell state); the output stays in tanh's [-1, 1], the convention of the
``worldmodels/`` envs (CarRacing's wrapper maps gas and brake). With z=32, h=256, A=3 and a bias the
controller has 288 * 3 + 3 = 867 parameters, the paper's count; Doom's [z, c, h] controller with z=64,
h=c=512, one output and no bias has 1,088.

Flat layout: W row-major (A, F), then b (A,) when there is a bias.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

ControllerInputs = Literal["z", "zh", "zch"]
CONTROLLER_INPUTS: tuple[str, ...] = ("z", "zh", "zch")
CONTROLLER_DIR = "controller"
"""Where a run folder keeps its evolved controller (mean.npy, best.npy and the CMA-ES logs)."""
MEAN_PARAMS_NAME = "mean.npy"
"""The CMA-ES distribution mean, the controller to deploy."""


class Controller:
    """a = tanh(W x + b) with W (A, F), b (A,); F = Z, Z + H or Z + 2H for inputs "z", "zh", "zch"."""

    def __init__(self, z_size: int, hidden_size: int, action_size: int, inputs: ControllerInputs = "zh",
                 bias: bool = True) -> None:
        if inputs not in CONTROLLER_INPUTS:
            raise ValueError(f"controller inputs must be one of {CONTROLLER_INPUTS}, got {inputs!r}")
        self.inputs = inputs
        self.bias = bias
        self.action_size = action_size
        self.input_size = z_size + hidden_size * {"z": 0, "zh": 1, "zch": 2}[inputs]
        self.weight = torch.zeros(action_size, self.input_size)  # (A, F)
        self.offset = torch.zeros(action_size)  # (A,)

    @property
    def num_params(self) -> int:
        """Length D of the flat parameter vector: A * F (+ A with a bias)."""
        return self.action_size * (self.input_size + int(self.bias))

    def check_flat(self, params: np.ndarray | torch.Tensor) -> None:
        """Raise ValueError unless the last axis of ``params`` has length :attr:`num_params`."""
        shape = tuple(params.shape)
        if len(shape) == 0 or shape[-1] != self.num_params:
            raise ValueError(
                f"controller parameter vector has shape {shape}, expected last axis {self.num_params} "
                f"(inputs={self.inputs!r}, F={self.input_size}, A={self.action_size}, bias={self.bias}); "
                "was it trained with other controller or model settings?")

    def set_flat(self, params: np.ndarray | torch.Tensor) -> None:
        """Load the flat vector ``params`` (D,)."""
        self.check_flat(params)
        flat = torch.as_tensor(np.asarray(params, np.float32)).reshape(-1)
        weight, offset = self.split(flat.unsqueeze(0))
        self.weight, self.offset = weight[0], offset[0]

    def get_flat(self) -> np.ndarray:
        """The parameters as a flat float32 vector (D,)."""
        parts = [self.weight.reshape(-1)] + ([self.offset] if self.bias else [])
        return torch.cat(parts).numpy().astype(np.float32)

    @property
    def reads_memory(self) -> bool:
        """Whether C reads M's state (then M must be stepped alongside the environment)."""
        return self.inputs != "z"

    def features(self, z: torch.Tensor, h: torch.Tensor | None = None, c: torch.Tensor | None = None) -> torch.Tensor:
        """Controller input x (B, F) from z (B, Z) and M's hidden and cell state h, c (B, H) each.

        "z" ignores h and c; "zh" gives [z, h]; "zch" gives [z, c, h].
        """
        if self.inputs == "z":
            return z
        if h is None or (self.inputs == "zch" and c is None):
            raise ValueError(f"a controller with inputs {self.inputs!r} needs M's state ("
                             + ("h" if self.inputs == "zh" else "h and c") + ")")
        return torch.cat([z, h] if self.inputs == "zh" else [z, c, h], dim=-1)

    def act(self, x: torch.Tensor) -> torch.Tensor:
        """Actions (B, A) in [-1, 1] for inputs x (B, F), all with this controller's parameters."""
        return torch.tanh(x @ self.weight.T + self.offset)

    def act_population(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Actions (B, A) where row i uses its own parameters: params (B, D), x (B, F)."""
        self.check_flat(params)
        weight, offset = self.split(params.to(x.dtype))  # (B, A, F), (B, A)
        return torch.tanh(torch.einsum("baf,bf->ba", weight, x) + offset)

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat parameter rows (B, D) as W (B, A, F) and b (B, A) (zeros without a bias), views where possible."""
        count = self.action_size * self.input_size
        weight = params[:, :count].reshape(-1, self.action_size, self.input_size)
        offset = params[:, count:] if self.bias else params.new_zeros(params.shape[0], self.action_size)
        return weight, offset
