"""A composition environment in the spirit of RL Tuner (Jaques et al., 2017): the agent writes one note per step.

Each step the agent picks a note token and a duration token (``envs.music_notation``). The reward is

    likelihood_weight * (log p(note) + log p(duration))      a note scorer's opinion, e.g. a trained LSTM's
    - key_weight * (share of the note's pitches outside the key)
    - repeat_weight                                            when the same note is repeated more than max_repeats times
    +/- leap_weight                                            after a leap of more than a fifth (7 semitones): + when
                                                               the note moves back by a step (1 or 2 semitones),
                                                               - otherwise

each term a setting (weight 0 turns it off). The scorer is injected (:class:`NoteScorer`), so this module knows
no model; without one the reward is the rules alone. An episode ends once ``bars`` bars of ``beats_per_bar``
quarter notes are written. Observation: the last ``context`` note tokens, then the last ``context`` duration
tokens, as vocabulary indices (START-padded, oldest first). ``render()`` (render_mode "midi") writes the
melody so far to ``midi_path``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.midi import write_melody_midi
from envs.music_notation import (
    REST,
    START,
    duration_token,
    note_name,
    pitch_of,
    quarter_length,
    token_pitches,
)

DEFAULT_NOTES = (START, REST, *(note_name(p) for p in range(60, 85)))
"""Vocabulary without a scorer: START, rest, and C4 to C6."""
DEFAULT_DURATIONS = (START, *(duration_token(q) for q in (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4)))
"""Durations without a scorer: START, and a sixteenth to a whole note."""
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10, 11)}
"""Pitch classes above the tonic in each mode (minor: natural and harmonic, both sevenths allowed)."""
LEAP = 7
"""Semitones: a larger interval is a leap that needs resolving."""


class NoteScorer(Protocol):
    """Scores the next token given the history (e.g. ``worldmodels.music.composition.LSTMNoteScorer``)."""

    def __call__(self, notes: np.ndarray, durations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """notes, durations: (context,) int64 vocabulary indices, oldest first, START-padded.

        :returns: log-probabilities of the next note token (len(notes vocabulary),) and of the next duration
            token (len(durations vocabulary),), as floats.
        """
        ...


def key_pitch_classes(key: str) -> frozenset[int]:
    """Pitch classes (0 = C) of a key named like "C major", "F# minor" or "B- major".

    :raises ValueError: the key is not a pitch class followed by major or minor.
    """
    tonic, _, mode = key.strip().partition(" ")
    mode = mode.strip().lower()
    try:
        root = pitch_of(tonic[:1].upper() + tonic[1:] + "4") % 12
    except ValueError:
        root = None
    if root is None or mode not in SCALES:
        raise ValueError(f"key {key!r} must be a tonic and a mode, e.g. 'C major', 'F# minor', 'B- major'")
    return frozenset((root + step) % 12 for step in SCALES[mode])


class CompositionEnv(gym.Env):
    """Write a melody note by note; see the module docstring for the reward.

    :param notes: the note vocabulary, START first (the scorer's; default :data:`DEFAULT_NOTES`).
    :param durations: the duration vocabulary, START first (default :data:`DEFAULT_DURATIONS`).
    :param scorer: log-probabilities of the next tokens given the history; None: rules-only reward.
    :param context: tokens of history in the observation and given to the scorer (the LSTM's sequence length).
    :param bars: bars per episode; :param beats_per_bar: quarter notes per bar.
    :param key: the key of the "stay in key" rule, e.g. "C major".
    :param max_repeats: consecutive repeats of one note allowed before the repeat penalty.
    :param midi_path: where ``render()`` writes.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["midi"]}

    def __init__(
        self,
        notes: Sequence[str] | None = None,
        durations: Sequence[str] | None = None,
        scorer: NoteScorer | None = None,
        context: int = 32,
        bars: int = 4,
        beats_per_bar: float = 4.0,
        key: str = "C major",
        likelihood_weight: float = 1.0,
        key_weight: float = 1.0,
        repeat_weight: float = 1.0,
        max_repeats: int = 3,
        leap_weight: float = 1.0,
        render_mode: str | None = None,
        midi_path: str | Path = "composition.mid",
    ) -> None:
        self.notes = list(notes or DEFAULT_NOTES)
        self.durations = list(durations or DEFAULT_DURATIONS)
        for name, vocabulary in (("notes", self.notes), ("durations", self.durations)):
            if len(vocabulary) < 2 or vocabulary[0] != START:
                raise ValueError(f"{name} must list {START!r} first and at least one token after it, "
                                 f"got {vocabulary[:3]}...")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'midi', got {render_mode!r}")
        if context < 1 or bars < 1 or beats_per_bar <= 0 or max_repeats < 1:
            raise ValueError("context, bars, beats_per_bar and max_repeats must be positive")
        self.pitches = [token_pitches(t) for t in self.notes]
        self.lengths = [0.0, *(quarter_length(t) for t in self.durations[1:])]
        self.in_key = key_pitch_classes(key)
        self.scorer, self.context = scorer, context
        self.total_beats = bars * beats_per_bar
        self.weights = {"likelihood": likelihood_weight, "key": key_weight, "repeat": repeat_weight,
                        "leap": leap_weight}
        self.max_repeats = max_repeats
        self.render_mode, self.midi_path = render_mode, Path(midi_path)
        self.action_space = spaces.MultiDiscrete([len(self.notes) - 1, len(self.durations) - 1])
        self.observation_space = spaces.MultiDiscrete([len(self.notes)] * context + [len(self.durations)] * context)
        self._written: list[tuple[int, int]] = []
        self._beats = 0.0

    def _observation(self) -> np.ndarray:
        """(2 * context,) int64: the last notes then the last durations, START-padded."""
        history = self._written[-self.context:]
        pad = [0] * (self.context - len(history))
        return np.array(pad + [n for n, _ in history] + pad + [d for _, d in history], dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._written, self._beats = [], 0.0
        return self._observation(), {"beats": 0.0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Write note token ``action[0] + 1`` for duration token ``action[1] + 1`` (index 0 is START)."""
        note, duration = int(action[0]) + 1, int(action[1]) + 1
        terms = {"likelihood": 0.0, **self._rule_terms(note)}
        if self.scorer is not None:
            observation = self._observation()
            note_logp, duration_logp = self.scorer(observation[:self.context], observation[self.context:])
            terms["likelihood"] = float(note_logp[note]) + float(duration_logp[duration])
        reward = sum(self.weights[name] * value for name, value in terms.items())
        self._written.append((note, duration))
        self._beats += self.lengths[duration]
        terminated = self._beats >= self.total_beats
        return self._observation(), float(reward), terminated, False, {"beats": self._beats, **terms}

    def _rule_terms(self, note: int) -> dict[str, float]:
        """The music-theory terms (before their weights) for writing ``note`` after the notes written so far."""
        pitches = self.pitches[note]
        key = -sum(p % 12 not in self.in_key for p in pitches) / len(pitches) if pitches else 0.0
        recent = [n for n, _ in self._written[-self.max_repeats:]]
        repeat = -1.0 if pitches and len(recent) == self.max_repeats and all(n == note for n in recent) else 0.0
        leap = 0.0
        melody = [self.pitches[n][-1] for n, _ in self._written if self.pitches[n]]  # top pitch of each note
        if pitches and len(melody) >= 2 and abs(melody[-1] - melody[-2]) > LEAP:
            back = (pitches[-1] - melody[-1]) * np.sign(melody[-1] - melody[-2])  # < 0: moving back
            leap = 1.0 if -2 <= back <= -1 else -1.0
        return {"key": key, "repeat": repeat, "leap": leap}

    def melody(self) -> tuple[list[str], list[str]]:
        """The note and duration tokens written so far in this episode."""
        return [self.notes[n] for n, _ in self._written], [self.durations[d] for _, d in self._written]

    def render(self) -> Path | None:
        """render_mode "midi": write the melody so far to ``midi_path`` and return that path."""
        if self.render_mode != "midi":
            return None
        return write_melody_midi(*self.melody(), self.midi_path)
