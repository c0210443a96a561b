"""Melodies in the token notation (:mod:`envs.music_notation`) written as MIDI files, through music21."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from envs.music_notation import START, token_pitches


def write_melody_midi(notes: Sequence[str], durations: Sequence[str], path: str | Path,
                      tempo_bpm: float = 90.0) -> Path:
    """Write parallel note and duration tokens (START tokens skipped) as a one-track MIDI file at ``path``.

    :param tempo_bpm: quarter notes per minute.
    :returns: ``path``.
    """
    from music21 import chord, note, stream, tempo

    if len(notes) != len(durations):
        raise ValueError(f"{len(notes)} note tokens but {len(durations)} duration tokens; they come in pairs")
    part = stream.Part()
    part.append(tempo.MetronomeMark(number=tempo_bpm))
    for token, length in zip(notes, durations):
        if START in (token, length):
            continue
        pitches = token_pitches(token)
        ql = Fraction(length).limit_denominator(48)
        if not pitches:
            part.append(note.Rest(quarterLength=ql))
        elif len(pitches) == 1:
            part.append(note.Note(pitches[0], quarterLength=ql))
        else:
            part.append(chord.Chord(list(pitches), quarterLength=ql))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stream.Score([part]).write("midi", fp=str(path))
    return path
