"""The composition env (``worldmodels/Composition-v0``) with a trained music LSTM as its note scorer."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import torch

import envs  # noqa: F401  (registers worldmodels/Composition-v0)
from worldmodels.checkpoint import load_music_lstm
from worldmodels.config_schema import MusicConfig
from worldmodels.music.lstm import MusicLSTM


class LSTMNoteScorer:
    """``envs.composition.NoteScorer`` from a :class:`MusicLSTM`: log-probabilities of the next note and duration
    given (context,) token indices of each, computed on the CPU."""

    def __init__(self, model: MusicLSTM) -> None:
        self.model = model.cpu().eval()

    def __call__(self, notes: np.ndarray, durations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        note_logp, duration_logp = self.model.log_probs(torch.as_tensor(notes).view(1, -1),
                                                        torch.as_tensor(durations).view(1, -1))  # (1, N), (1, D)
        return note_logp[0].double().numpy(), duration_logp[0].double().numpy()


def make_composition_env(checkpoint: str | Path, config: MusicConfig, render_mode: str | None = None,
                         midi_path: str | Path = "composition.mid") -> gymnasium.Env:
    """``worldmodels/Composition-v0`` rewarded by the LSTM in ``checkpoint`` (a ``music_lstm.pt``) and the rules
    ``config`` weighs; its vocabularies and context are the LSTM's."""
    model = load_music_lstm(checkpoint)
    return gymnasium.make(
        "worldmodels/Composition-v0", notes=model.notes, durations=model.durations, scorer=LSTMNoteScorer(model),
        context=model.seq_len, bars=config.episode_bars, key=config.key, likelihood_weight=config.likelihood_weight,
        key_weight=config.key_weight, repeat_weight=config.repeat_weight, max_repeats=config.max_repeats,
        leap_weight=config.leap_weight, render_mode=render_mode, midi_path=midi_path)
