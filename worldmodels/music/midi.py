"""Writing generated music as MIDI files, atomically: token sequences (one track) and piano-rolls (four tracks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from envs.midi import write_melody_midi
from rollouts.atomic import atomic_path
from worldmodels.music.data import STEPS_PER_BAR, STEPS_PER_QUARTER


def write_tokens_midi(notes: Sequence[str], durations: Sequence[str], path: str | Path,
                      tempo_bpm: float = 90.0) -> Path:
    """Write note and duration tokens as a one-track MIDI file at ``path``, atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        write_melody_midi(notes, durations, tmp, tempo_bpm)
    return Path(path)


def rolls_score(pitches: np.ndarray, tempo_bpm: float = 90.0):
    """A music21 Score of piano-rolls (n, bars, 16, tracks) int MIDI pitches (-1 silent) played one after another:
    one part per track, a run of equal pitches in a track one note of a sixteenth per step."""
    from music21 import note, stream, tempo

    steps = pitches.reshape(-1, pitches.shape[-1])  # (n * bars * 16, tracks)
    parts = []
    for track in range(steps.shape[1]):
        part = stream.Part()
        if track == 0:
            part.append(tempo.MetronomeMark(number=tempo_bpm))
        voice = steps[:, track]
        starts = np.flatnonzero(np.diff(voice, prepend=voice[0] - 1))  # first step of each run
        for begin, end in zip(starts, [*starts[1:], len(voice)]):
            length = (end - begin) / STEPS_PER_QUARTER
            value = int(voice[begin])
            part.append(note.Rest(quarterLength=length) if value < 0 else note.Note(value, quarterLength=length))
        parts.append(part)
    return stream.Score(parts)


def write_rolls_midi(pitches: np.ndarray, path: str | Path, tempo_bpm: float = 90.0) -> Path:
    """Write piano-rolls (n, bars, 16, tracks) int MIDI pitches (-1 silent) as a multi-track MIDI file, atomically.

    :raises ValueError: ``pitches`` is not (n, bars, 16, tracks).
    """
    if pitches.ndim != 4 or pitches.shape[2] != STEPS_PER_BAR:
        raise ValueError(f"piano-rolls must be (n, bars, {STEPS_PER_BAR}, tracks) MIDI pitches, got {pitches.shape}")
    with atomic_path(path) as tmp:
        rolls_score(pitches, tempo_bpm).write("midi", fp=str(tmp))
    return Path(path)
