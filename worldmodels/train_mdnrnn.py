"""Stage M: train the MDN-RNN on the stored latents to predict z_{t+1} (and reward, done) from (z_t, a_t).

Every batch draws fresh z = mu + exp(logvar / 2) * eps from the posterior the encode stage stored, as
the authors do. Writes into the run folder:

    mdnrnn.pt        the latest checkpoint (see ``worldmodels.checkpoint``), resumed when present
    mdnrnn_log.csv   step, epoch, loss, z_nll, reward, done, seq_steps_per_s; one row per ``log_every``
                     steps, means over those steps (z_nll in nats per latent dimension; throughput
                     counts the unpadded sequence steps)

An ensemble (``mdnrnn.members`` K > 1) trains its members one after the other, each resumed on its own: member 0 is
the M above, member k >= 1 the same files in ``RUN/mdnrnn_members/k/``
(:func:`worldmodels.run_layout.mdnrnn_member_dir`), trained with seed + k and, with ``mdnrnn.bootstrap``, on a
bootstrap resample of the episodes. Without bootstrap, member k is exactly the M that ``train_mdnrnn(..., seed=k)``
writes into an empty folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from rollouts.datasets import SequenceDataset
from rollouts.storage import latent_path, list_episode_files, read_arrays, read_latents
from worldmodels.checkpoint import model_args_of
from worldmodels.config_schema import Config
from worldmodels.device import resolve_device
from worldmodels.encode import check_latents_identity
from worldmodels.mdnrnn import MDNRNN, MDNRNNOutput, mdnrnn_loss
from worldmodels.run_layout import MDNRNN_CHECKPOINT_NAME, MDNRNN_LOG_NAME, VAE_CHECKPOINT_NAME, mdnrnn_member_dir
from worldmodels.training import (
    TrainingPlan,
    TrainSummary,
    autocast_dtype,
    keep_resident,
    resolved_settings,
    run_training,
)
from worldmodels.vae import ConvVAE

METRICS = ("loss", "z_nll", "reward", "done")


def mdnrnn_config_args(config: Config) -> dict[str, Any]:
    """M's constructor arguments the config decides, by setting (:func:`worldmodels.checkpoint.model_args_of`), V's
    ``z_size`` among them; the data decides ``action_size``."""
    cfg = config.mdnrnn
    return {"vae.z_size": config.vae.z_size, "mdnrnn.hidden_size": cfg.hidden_size,
            "mdnrnn.num_mixtures": cfg.num_mixtures, "mdnrnn.reward_head": cfg.reward_head,
            "mdnrnn.done_head": cfg.done_head, "mdnrnn.dropout": cfg.dropout}


def _action_size(files: list[Path], z_size: int) -> int:
    """A of the stored actions, once the stored latents are known to be of size ``z_size``; clear errors when the
    latents are missing or do not fit."""
    missing = [f.name for f in files if not latent_path(f).exists()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise FileNotFoundError(f"{len(missing)} of {len(files)} episodes in {files[0].parent} have no latents "
                                f"({shown}); run `worldmodels encode` on them first")
    mu, _ = read_latents(files[0])  # (T+1, Z)
    if mu.shape[1] != z_size:
        raise ValueError(f"the latents in {files[0].parent} have Z={mu.shape[1]} but vae.z_size is {z_size}; "
                         "use the configuration V was trained with, or re-run `worldmodels encode`")
    actions = read_arrays(files[0], ("actions",))["actions"]
    if actions.ndim != 2:
        raise ValueError(f"the MDN-RNN needs continuous actions stored as (T, A); {files[0]} holds actions of "
                         f"shape {actions.shape} {actions.dtype}")
    return actions.shape[1]


@dataclass
class EnsembleSummary(TrainSummary):
    """What a training call did to member 0 (its fields), and to the other members of an ensemble."""

    members: list[TrainSummary] = field(default_factory=list)
    """Members 1..K-1, in order (empty for one M)."""

    def describe(self) -> str:
        """One line for people: member 0's, then each other member's."""
        lines = [super().describe(), *(f"member {k}: {member.describe()}" for k, member in enumerate(self.members, 1))]
        return "; ".join(lines)


def bootstrap_episodes(files: list[Path], seed: int) -> list[Path]:
    """A bootstrap resample of ``files``: as many draws as files, with replacement, from ``seed``, in file order."""
    draws = np.sort(np.random.default_rng(seed).integers(len(files), size=len(files)))
    return [files[i] for i in draws]


def train_mdnrnn(
    config: Config,
    data_dir: str | Path,
    run_dir: str | Path,
    progress: bool = True,
    log_every: int = 10,
    seed: int = 0,
) -> EnsembleSummary:
    """Train M for ``config.mdnrnn.steps`` optimiser steps on ``data_dir``'s latents, resuming ``run_dir/mdnrnn.pt``;
    then, with ``mdnrnn.members`` K > 1, members 1..K-1 likewise in their folders (see the module docstring).

    Sequences of ``seq_len`` steps (padded and masked at episode ends) come from :class:`SequenceDataset`
    in batches of ``batch_size``, each gathered by tensor indexing, epoch after epoch until the step budget is
    spent; ``mdnrnn.resident`` and ``mdnrnn.precision`` work as V's (see :func:`worldmodels.train_vae.train_vae`):
    the latents streamed from disk or held on the device, the forward pass in float32 or under bfloat16
    autocast (the loss in float32). The LSTM reads
    [z_t, a_t] and is scored on z_{t+1}; the reward and done heads, when enabled, on the step's reward
    and termination (``reward_weight``, ``done_pos_weight``). Gradients are clipped to norm ``grad_clip``. With
    ``mdnrnn.dropout`` > 0 each sequence of a batch draws its own dropout mask of the LSTM's inputs
    (:mod:`worldmodels.mdnrnn`), from the seeded global generator.

    When ``run_dir`` holds V (``vae.pt``), latents encoded by another V are refused
    (:func:`worldmodels.encode.check_latents_identity`).

    :param log_every: optimiser steps per CSV row.
    :param seed: seeds member 0's initialisation, latent sampling and data order; member k's are seeded by seed + k.
    """
    run_dir = Path(run_dir)
    files = list_episode_files(data_dir)
    action_size = _action_size(files, config.vae.z_size)
    if (run_dir / VAE_CHECKPOINT_NAME).is_file():
        check_latents_identity(files, run_dir / VAE_CHECKPOINT_NAME)
    summaries = []
    for member in range(config.mdnrnn.members):
        bootstrap = config.mdnrnn.bootstrap and member > 0
        member_files = bootstrap_episodes(files, seed + member) if bootstrap else files
        summaries.append(_train_member(config, member_files, action_size, mdnrnn_member_dir(run_dir, member),
                                       bootstrap, progress, log_every, seed + member))
    return EnsembleSummary(**vars(summaries[0]), members=summaries[1:])


def _train_member(config: Config, files: list[Path], action_size: int, folder: Path, bootstrap: bool, progress: bool,
                  log_every: int, seed: int) -> TrainSummary:
    """Train (or resume) one M on ``files`` into ``folder``'s mdnrnn.pt and mdnrnn_log.csv, seeded by ``seed``. Its
    checkpoint records the mdnrnn settings but ``members`` and ``bootstrap`` (what one M is trained on, not how),
    and ``bootstrap: true`` when this M trains on a resample ``files``: an M of an ensemble without bootstrap records
    what one M trained alone does."""
    cfg = config.mdnrnn
    device = resolve_device(config.device)
    torch.manual_seed(seed)
    model_args = {**model_args_of(mdnrnn_config_args(config)), "action_size": action_size}
    model = MDNRNN(**model_args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    dtype = autocast_dtype(cfg.precision, device)
    dataset = SequenceDataset(files, seq_len=cfg.seq_len, source="latents", shuffle=True,
                              buffer_episodes=cfg.buffer_episodes, seed=seed, batch_size=cfg.batch_size)
    resident = keep_resident(cfg.resident, dataset.nbytes, device)
    if resident:
        dataset.to(device)
    loader = DataLoader(dataset, batch_size=None, pin_memory=device.type == "cuda" and not resident,
                        generator=torch.Generator())

    def step(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        batch = {name: value.to(device, non_blocking=True) for name, value in batch.items()}
        z = ConvVAE.sample_latent(batch["mu"], batch["logvar"])  # (B, L+1, Z)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype is not None):
            out = model(z[:, :-1], batch["actions"])  # step t predicts z_{t+1}
        out = _as_float32(out)
        loss = mdnrnn_loss(out, z[:, 1:], batch["rewards"], batch["terminated"], batch["mask"],
                           done_pos_weight=cfg.done_pos_weight, reward_weight=cfg.reward_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        values = (loss.total, loss.z_nll, loss.reward, loss.done)
        return {name: value.detach() for name, value in zip(METRICS, values)}, batch["mask"].sum()

    folder.mkdir(parents=True, exist_ok=True)
    plan = TrainingPlan(
        stage="mdnrnn",
        checkpoint_path=folder / MDNRNN_CHECKPOINT_NAME,
        log_path=folder / MDNRNN_LOG_NAME,
        metric_names=METRICS,
        rate_name="seq_steps_per_s",
        checkpoint_every=cfg.checkpoint_every,
        log_every=log_every,
        max_steps=cfg.steps,
    )
    settings = {k: v for k, v in resolved_settings(cfg, dtype, resident).items() if k not in ("members", "bootstrap")}
    return run_training(plan, model, optimizer, model_args, settings | ({"bootstrap": True} if bootstrap else {}),
                        dataset, loader, step, progress)


def _as_float32(out: MDNRNNOutput) -> MDNRNNOutput:
    """M's outputs (bfloat16 under autocast) as float32, for a float32 loss."""
    return out._replace(**{name: value.float() for name, value in out._asdict().items()
                           if isinstance(value, torch.Tensor)})
