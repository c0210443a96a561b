"""``music generate``: new music from a trained model of a run folder, written as MIDI."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import torch

from worldmodels.checkpoint import load_musegan, load_music_lstm
from worldmodels.config_schema import MusicConfig
from worldmodels.music.midi import write_rolls_midi, write_tokens_midi
from worldmodels.run_layout import MUSEGAN_CHECKPOINT_NAME, MUSIC_LSTM_CHECKPOINT_NAME

QUARTERS_PER_BAR = 4


def generate_music(run_dir: str | Path, model: str, out: str | Path, config: MusicConfig) -> str:
    """Write ``config.bars`` bars from the ``model`` ("lstm" or "musegan") of ``run_dir`` to the MIDI file ``out``
    (LSTM: sampled at ``config.temperature``; MuseGAN: whole samples, rounded up), seeded with ``config.seed``.

    :returns: one line saying what was written.
    """
    generator = torch.Generator().manual_seed(config.seed)
    if model == "lstm":
        lstm = load_music_lstm(Path(run_dir) / MUSIC_LSTM_CHECKPOINT_NAME)
        notes, durations = lstm.compose(config.bars * QUARTERS_PER_BAR, config.temperature, generator)
        write_tokens_midi(notes, durations, out)
        quarters = sum(Fraction(d) for d in durations)
        return f"{len(notes)} notes, {float(quarters):g} quarter notes, temperature {config.temperature:g} -> {out}"
    if model == "musegan":
        gan = load_musegan(Path(run_dir) / MUSEGAN_CHECKPOINT_NAME)
        pitches = gan.generate(math.ceil(config.bars / gan.bars), generator)  # (n, bars, 16, 4)
        write_rolls_midi(pitches, out)
        return f"{pitches.shape[0]} samples of {gan.bars} bars, {pitches.shape[-1]} tracks -> {out}"
    raise ValueError(f"unknown music model {model!r}; choose lstm or musegan")
