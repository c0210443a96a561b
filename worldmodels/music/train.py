"""Training the music models on the shared resumable loop (:func:`worldmodels.training.run_training`).

Both read the corpus ``config.music`` describes, cached in the run folder (``worldmodels.music.data``), and
write there:

    music_lstm.pt, music_lstm_log.csv   the LSTM (kind "music_lstm", vocabularies in its model_args); log columns
                                        step, epoch, loss (note_loss + duration_loss, nats per token), note_loss,
                                        duration_loss, note_accuracy (argmax = next note), tokens_per_s
    musegan.pt, musegan_log.csv         MuseGAN (kind "musegan"); log columns step, epoch, critic_loss,
                                        generator_loss, critic_gap (mean critic score of real minus fake), with
                                        a penalty gradient_penalty and grad_norm, samples_per_s

A MuseGAN step is ``n_critic`` critic updates, each on its own batch of real sections, then one generator update
(the WGAN-GP updates of ``worldmodels.components.gan_updates``, with Adam betas 0.5, 0.9).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from worldmodels.checkpoint import model_args_of, read_model_args
from worldmodels.components.gan_updates import GANRecipe, GANUpdates
from worldmodels.components.train_text import RMSPROP_EPS, RMSPROP_RHO
from worldmodels.config_schema import Config, MusicLSTMConfig
from worldmodels.device import resolve_device
from worldmodels.music.data import MusicDataError, load_corpus, roll_chunks, token_windows, vocabulary
from worldmodels.music.lstm import MusicLSTM
from worldmodels.music.musegan import MuseGAN, check_shape
from worldmodels.run_layout import (
    MUSEGAN_CHECKPOINT_NAME,
    MUSEGAN_LOG_NAME,
    MUSIC_LSTM_CHECKPOINT_NAME,
    MUSIC_LSTM_LOG_NAME,
)
from worldmodels.training import TrainingPlan, TrainSummary, run_training

DATA_SETTINGS = ("folder", "limit", "tokens", "seed")
"""``music`` settings stored with each model's settings in its checkpoint."""


class EpochShuffledTensors(TensorDataset):
    """Tensors a DataLoader shuffles with ``generator``, reseeded to ``seed + epoch`` by :meth:`set_epoch`, so a
    resumed run reads its epochs in the same order."""

    def __init__(self, *tensors: torch.Tensor, generator: torch.Generator, seed: int) -> None:
        super().__init__(*tensors)
        self.generator, self.seed = generator, seed

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + epoch)


def scheduled_learning_rate(cfg: MusicLSTMConfig, step: int) -> float:
    """The LSTM's learning rate for optimiser step ``step`` (0 for the first) under ``cfg.lr_schedule``."""
    if cfg.lr_schedule == "constant" or cfg.steps == 0:
        return cfg.learning_rate
    return cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))


def steps_taken(optimizer: torch.optim.Optimizer) -> int:
    """Optimiser steps taken so far, read from the optimiser's state (a resumed run restores it with the
    checkpoint, so a schedule computed from it goes on where it stopped)."""
    state = optimizer.state.get(optimizer.param_groups[0]["params"][0])
    return int(state["step"]) if state else 0


def music_lstm_config_args(config: Config) -> dict[str, Any]:
    """The music LSTM's constructor arguments the config decides, by setting
    (:func:`worldmodels.checkpoint.model_args_of`); the music read decides ``notes`` and ``durations``."""
    cfg = config.music_lstm
    return {"music_lstm.seq_len": cfg.seq_len, "music_lstm.embedding_size": cfg.embedding_size,
            "music_lstm.hidden_size": cfg.hidden_size, "music_lstm.layers": cfg.layers}


def musegan_config_args(config: Config) -> dict[str, Any]:
    """MuseGAN's constructor arguments the config decides, by setting (:func:`worldmodels.checkpoint.model_args_of`);
    the music read decides ``lowest_pitch``."""
    cfg = config.musegan
    return {"musegan.bars": cfg.bars, "musegan.pitches": cfg.pitches, "musegan.latent_size": cfg.latent_size,
            "musegan.width": cfg.width}


def _section(config: Config, name: str) -> dict:
    music = dataclasses.asdict(config.music)
    return {**dataclasses.asdict(getattr(config, name)), **{k: music[k] for k in DATA_SETTINGS}}


def train_music_lstm(config: Config, run_dir: str | Path, progress: bool = True, log_every: int = 10) -> TrainSummary:
    """Train the LSTM on the corpus's token windows for ``config.music_lstm.steps`` RMSprop steps (Keras's rho and
    epsilon, the book's), gradients clipped to ``grad_clip``, the learning rate following ``lr_schedule``;
    resuming ``run_dir/music_lstm.pt``.

    :raises MusicDataError: the music cannot be read (see ``worldmodels.music.data``), or the checkpoint being
        resumed was trained on music of other vocabularies.
    :raises CheckpointError: the run folder's checkpoint does not fit.
    """
    cfg = config.music_lstm
    device = resolve_device(config.device)
    run_dir = Path(run_dir)
    corpus = load_corpus(config.music, run_dir)
    notes, durations = vocabulary(corpus.notes, "notes"), vocabulary(corpus.durations, "durations")
    checkpoint_path = run_dir / MUSIC_LSTM_CHECKPOINT_NAME
    if checkpoint_path.exists():
        earlier = read_model_args(checkpoint_path, "music_lstm")
        if (earlier["notes"], earlier["durations"]) != (notes, durations):
            raise MusicDataError(f"{checkpoint_path} was trained on other music (its note and duration vocabularies "
                                 "differ from the music read now): use the music settings it was trained with "
                                 "(music.folder, limit, tokens, seed), or a new --run folder")
    arrays = token_windows(corpus, notes, durations, cfg.seq_len)  # (N, T), (N, T), (N,), (N,)
    generator = torch.Generator()
    dataset = EpochShuffledTensors(*map(torch.from_numpy, arrays), generator=generator, seed=config.music.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=generator)
    torch.manual_seed(config.music.seed)
    model_args = {**model_args_of(music_lstm_config_args(config)), "notes": notes, "durations": durations}
    model = MusicLSTM(**model_args).to(device)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=cfg.learning_rate, alpha=RMSPROP_RHO, eps=RMSPROP_EPS)

    def step(batch: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        history_notes, history_durations, next_notes, next_durations = (t.to(device) for t in batch)
        note_logits, duration_logits = model(history_notes, history_durations)  # (B, N), (B, D)
        note_loss = F.cross_entropy(note_logits, next_notes)
        duration_loss = F.cross_entropy(duration_logits, next_durations)
        loss = note_loss + duration_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        learning_rate = scheduled_learning_rate(cfg, steps_taken(optimizer))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        optimizer.step()
        accuracy = (note_logits.argmax(dim=-1) == next_notes).float().mean()
        return {"loss": loss.detach(), "note_loss": note_loss.detach(), "duration_loss": duration_loss.detach(),
                "note_accuracy": accuracy}, next_notes.shape[0]

    plan = TrainingPlan(stage="music_lstm", checkpoint_path=checkpoint_path,
                        log_path=run_dir / MUSIC_LSTM_LOG_NAME,
                        metric_names=("loss", "note_loss", "duration_loss", "note_accuracy"),
                        rate_name="tokens_per_s", checkpoint_every=cfg.checkpoint_every, log_every=log_every,
                        max_steps=cfg.steps, steps_per_epoch=len(loader))
    return run_training(plan, model, optimizer, model_args, _section(config, "music_lstm"), dataset, loader, step,
                        progress)


def train_musegan(config: Config, run_dir: str | Path, progress: bool = True, log_every: int = 10) -> TrainSummary:
    """Train MuseGAN on the corpus's piano-roll sections for ``config.musegan.steps`` generator updates, resuming
    ``run_dir/musegan.pt``.

    :raises MusicDataError: the music cannot be read, spans more pitches than ``musegan.pitches``, or holds
        fewer sections than one step takes.
    """
    cfg = config.musegan
    check_shape(cfg.bars, cfg.pitches)
    device = resolve_device(config.device)
    run_dir = Path(run_dir)
    corpus = load_corpus(config.music, run_dir)
    lowest, highest = corpus.pitch_range()
    if highest - lowest + 1 > cfg.pitches:
        raise MusicDataError(f"the music spans {highest - lowest + 1} pitches (MIDI {lowest} to {highest}) but "
                             f"musegan.pitches is {cfg.pitches}; raise musegan.pitches (a multiple of 12)")
    chunks = roll_chunks(corpus, cfg.bars)  # (N, bars, 16, 4) int16
    per_step = cfg.n_critic * cfg.batch_size
    if len(chunks) < per_step:
        raise MusicDataError(f"a MuseGAN step takes n_critic x batch_size = {cfg.n_critic} x {cfg.batch_size} = "
                             f"{per_step} sections of {cfg.bars} bars, but the music holds {len(chunks)}; lower "
                             "musegan.batch_size or musegan.n_critic, or read more pieces (music.limit)")
    generator = torch.Generator()
    dataset = EpochShuffledTensors(torch.from_numpy(chunks.astype(np.int64)), generator=generator,
                                   seed=config.music.seed)
    loader = DataLoader(dataset, batch_size=per_step, shuffle=True, drop_last=True, generator=generator)
    torch.manual_seed(config.music.seed)
    model_args = {**model_args_of(musegan_config_args(config)), "lowest_pitch": lowest}
    model = MuseGAN(**model_args).to(device)
    optimizer = torch.optim.Adam([{"params": list(model.critic.parameters())},
                                  {"params": list(model.generator.parameters())}],
                                 lr=cfg.learning_rate, betas=(0.5, 0.9))
    recipe = GANRecipe("wasserstein", n_critic=cfg.n_critic, optimizer="adam", critic_lr=cfg.learning_rate,
                       generator_lr=cfg.learning_rate, gp_weight=cfg.gp_weight)
    updates = GANUpdates(model, optimizer, recipe)  # type: ignore[arg-type]  # MuseGAN duck-types GAN

    def step(batch: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        real = model.to_rolls(batch[0].to(device))  # (n_critic * B, bars, 16, P, 4) in {-1, 1}
        critic = [updates.critic_update(part) for part in real.split(cfg.batch_size)]
        metrics = {name: torch.stack([m[name] for m in critic]).mean() for name in critic[0]}
        metrics.update(updates.generator_update(cfg.batch_size))
        return metrics, real.shape[0]

    plan = TrainingPlan(stage="musegan", checkpoint_path=run_dir / MUSEGAN_CHECKPOINT_NAME,
                        log_path=run_dir / MUSEGAN_LOG_NAME, metric_names=recipe.metric_names(),
                        rate_name="samples_per_s", checkpoint_every=cfg.checkpoint_every, log_every=log_every,
                        max_steps=cfg.steps, steps_per_epoch=len(loader))
    return run_training(plan, model, optimizer, model_args, _section(config, "musegan"), dataset, loader, step,
                        progress)
