"""Supervised tasks made from rollouts, one item per step t of an episode.

The network reads frame o_t ("frame") or o_t and o_{t+1} stacked on channels ("transition"); it predicts the
action a_t taken (regression) or the sign of the reward r_t that followed (three classes). Batches are
``rollouts.datasets.SequenceDataset`` windows of one step: ``observations`` (B, 2, H, W, C) uint8 (o_t, o_{t+1}),
``actions`` (B, 1, A) float32, ``rewards`` (B, 1) float32.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from worldmodels.config_schema import FrameInputName, FrameTaskName

INPUT_FRAMES: dict[FrameInputName, int] = {"frame": 1, "transition": 2}
"""Frames the network reads per item."""


def frame_inputs(observations: torch.Tensor, input_name: FrameInputName) -> torch.Tensor:
    """observations (B, 2, H, W, C) uint8 -> (B, k * C, H, W) float in [0, 1], the first k frames stacked on
    channels (k = 1 for "frame", 2 for "transition")."""
    frames = observations[:, : INPUT_FRAMES[input_name]]  # (B, k, H, W, C)
    batch, count, height, width, channels = frames.shape
    stacked = frames.permute(0, 1, 4, 2, 3).reshape(batch, count * channels, height, width)  # (B, kC, H, W)
    return stacked.float().div_(255)


class FrameTask(Protocol):
    """What a network trained on rollout frames predicts, how it is trained, and how it is scored."""

    outputs: int
    """Network outputs per item."""
    metric_names: tuple[str, ...]
    """Names of :meth:`score`'s values, in CSV order."""

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's targets, (B, ...)."""
        ...

    def loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss, a scalar mean over the batch."""
        ...

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Held-out scores over every held-out item."""
        ...


class ActionRegression:
    """Predict the action a_t (A values): MSE loss; scored by MSE and R^2 = 1 - SSE / SST over all action
    dimensions (0 for predicting the held-out mean, 1 for perfect predictions)."""

    metric_names = ("mse", "r2")

    def __init__(self, action_size: int) -> None:
        self.outputs = action_size

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, A) float32."""
        return batch["actions"][:, 0]

    def loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(predictions, targets)

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """predictions and targets (N, A)."""
        squared_error = (predictions - targets).pow(2).sum()
        total = (targets - targets.mean(dim=0)).pow(2).sum()
        return {"mse": float(squared_error) / targets.numel(), "r2": float(1 - squared_error / total)}


class RewardSign:
    """Classify the sign of the reward r_t (0 negative, 1 zero, 2 positive): cross-entropy loss; scored by
    cross-entropy, accuracy, and the accuracy of always answering the held-out set's most common class."""

    outputs = 3
    metric_names = ("cross_entropy", "accuracy", "majority_accuracy")

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) int64 class indices."""
        return torch.sign(batch["rewards"][:, 0]).long() + 1

    def loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(predictions, targets)

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """predictions (N, 3) logits, targets (N,) class indices."""
        counts = torch.bincount(targets, minlength=self.outputs)
        return {"cross_entropy": float(F.cross_entropy(predictions, targets)),
                "accuracy": float((predictions.argmax(dim=1) == targets).float().mean()),
                "majority_accuracy": float(counts.max()) / len(targets)}


def make_task(name: FrameTaskName, action_size: int) -> FrameTask:
    """The task ``name`` for data whose actions have ``action_size`` dimensions."""
    if name == "action":
        return ActionRegression(action_size)
    if name == "reward":
        return RewardSign()
    raise ValueError(f"unknown frame task {name!r}; choose 'action' or 'reward'")
