"""C: the controller a = tanh(W x + b) that CMA-ES evolves, as one flat parameter vector.

x is [z], [z, h] or [z, c, h] (the ``inputs`` setting; h and c are M's LSTM hidden and cell state); the
output stays in tanh's [-1, 1], the convention of the ``worldmodels/`` envs (CarRacing's wrapper maps gas and
brake). With z=32, h=256, A=3 and a bias the controller has 288 * 3 + 3 = 867 parameters, the paper's count;
Doom's [z, c, h] controller with z=64, h=c=512, one output and no bias has 1,088.

``hidden_units`` U > 0 puts one tanh layer between x and the action, a = tanh(W2 tanh(W1 x + b1) + b2): the
paper's "V model only, with a hidden layer" ablation (U = 40 on z, 32 * 40 + 40 + 40 * 3 + 3 = 1,443
parameters). The published controller is U = 0.

Flat layout, layer by layer from the input: W row-major (out, in), then b (out,) when there is a bias.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import numpy as np
import torch

from worldmodels.config_schema import ControllerInputsName

CONTROLLER_INPUTS: tuple[ControllerInputsName, ...] = get_args(ControllerInputsName)


def load_params(path: str | Path, num_params: int | None = None) -> np.ndarray:
    """A controller's flat parameter vector (D,) float32 from a ``.npy`` file (``mean.npy``, ``best.npy``).

    :param num_params: the controller size the caller needs (None: any).
    :raises FileNotFoundError: there is no such file.
    :raises ValueError: not a readable ``.npy`` of one float vector (pickled objects are refused, never run),
        non-finite values, or another size than ``num_params``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"controller parameters {path} do not exist")
    try:
        params = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"controller parameters {path} are not a readable .npy file ({err})") from None
    if not isinstance(params, np.ndarray) or params.ndim != 1 or params.dtype.kind != "f":
        raise ValueError(f"controller parameters {path} must be one float vector (D,), got "
                         f"{getattr(params, 'shape', type(params).__name__)} {getattr(params, 'dtype', '')}")
    if not np.isfinite(params).all():
        raise ValueError(f"controller parameters {path} hold {int((~np.isfinite(params)).sum())} non-finite values")
    if num_params is not None and len(params) != num_params:
        raise ValueError(f"controller parameters {path} hold {len(params)} values, but this run's controller has "
                         f"{num_params} (controller.inputs, bias and hidden_units and V's and M's sizes decide it): "
                         "pass a controller trained with this run's config")
    return params.astype(np.float32)


class ControllerRows:
    """B controllers' parameters as per-layer tensors, split once per rollout (see :meth:`Controller.rows`).

    ``layers[i]`` is (weight (B, out_i, in_i), offset (B, out_i)); offsets are zeros without a bias. Indexing
    with a slice or index tensor selects controllers (rows) in every layer.
    """

    def __init__(self, layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]) -> None:
        self.layers = layers

    def __len__(self) -> int:
        return len(self.layers[0][0])

    def __getitem__(self, index: slice | torch.Tensor) -> ControllerRows:
        return ControllerRows(tuple((weight[index], offset[index]) for weight, offset in self.layers))


class Controller:
    """a = tanh(W x + b), or tanh(W2 tanh(W1 x + b1) + b2) with ``hidden_units`` U > 0; F = Z, Z + H or Z + 2H
    for inputs "z", "zh", "zch"; A actions."""

    def __init__(self, z_size: int, hidden_size: int, action_size: int, inputs: ControllerInputsName = "zh",
                 bias: bool = True, hidden_units: int = 0) -> None:
        if inputs not in CONTROLLER_INPUTS:
            raise ValueError(f"controller inputs must be one of {CONTROLLER_INPUTS}, got {inputs!r}")
        if hidden_units < 0:
            raise ValueError(f"controller hidden_units must be >= 0 (0: the published linear C), got {hidden_units}")
        self.inputs = inputs
        self.bias = bias
        self.hidden_units = hidden_units
        self.action_size = action_size
        self.input_size = z_size + hidden_size * {"z": 0, "zh": 1, "zch": 2}[inputs]
        sizes = [self.input_size] + ([hidden_units] if hidden_units else []) + [action_size]
        self.layer_shapes: tuple[tuple[int, int], ...] = tuple(zip(sizes[1:], sizes[:-1]))
        """(out, in) of every layer, from the input."""
        self.params = torch.zeros(1, self.num_params)  # (1, D), the parameters of act()

    @property
    def num_params(self) -> int:
        """Length D of the flat parameter vector: sum over layers of out * in (+ out with a bias)."""
        return sum(out * (inp + int(self.bias)) for out, inp in self.layer_shapes)

    def describe(self) -> str:
        """The shape in words, for error messages."""
        return (f"inputs={self.inputs!r}, F={self.input_size}, hidden_units={self.hidden_units}, "
                f"A={self.action_size}, bias={self.bias}")

    def check_flat(self, params: np.ndarray | torch.Tensor) -> None:
        """Raise ValueError unless the last axis of ``params`` has length :attr:`num_params`."""
        shape = tuple(params.shape)
        if len(shape) == 0 or shape[-1] != self.num_params:
            raise ValueError(
                f"controller parameter vector has shape {shape}, expected last axis {self.num_params} "
                f"({self.describe()}); was it trained with other controller or model settings?")

    def set_flat(self, params: np.ndarray | torch.Tensor) -> None:
        """Load the flat vector ``params`` (D,)."""
        self.check_flat(params)
        self.params = torch.as_tensor(np.asarray(params, np.float32)).reshape(1, -1).clone()

    def get_flat(self) -> np.ndarray:
        """The parameters as a flat float32 vector (D,)."""
        return self.params[0].numpy().astype(np.float32)

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
        for weight, offset in self.rows(self.params.to(x.device, x.dtype)).layers:
            x = torch.tanh(x @ weight[0].T + offset[0])
        return x

    def act_population(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Actions (B, A) where row i uses its own parameters: params (B, D), x (B, F)."""
        return self.act_rows(self.rows(params.to(x.dtype)), x)

    @staticmethod
    def act_rows(rows: ControllerRows, x: torch.Tensor) -> torch.Tensor:
        """Actions (B, A) where row i uses controller i of ``rows``; x (B, F).

        A broadcast product per layer: several times faster than a batched matrix product on the CPU for the
        published A = 3.
        """
        for weight, offset in rows.layers:
            x = torch.tanh((weight * x.unsqueeze(1)).sum(dim=-1) + offset)  # (B, out)
        return x

    def rows(self, params: torch.Tensor) -> ControllerRows:
        """Flat parameter rows (B, D) as per-layer weights (views where possible); raises on a wrong length."""
        self.check_flat(params)
        params = params.reshape(-1, self.num_params)
        layers, start = [], 0
        for out, inp in self.layer_shapes:
            weight = params[:, start:start + out * inp].reshape(-1, out, inp)  # (B, out, in)
            start += out * inp
            if self.bias:
                offset = params[:, start:start + out]  # (B, out)
                start += out
            else:
                offset = params.new_zeros(params.shape[0], out)
            layers.append((weight, offset))
        return ControllerRows(tuple(layers))
