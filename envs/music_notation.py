"""The token notation of melodies, shared by the composition env and the music models (``envs.midi`` writes it).

A piece is two parallel token sequences (the generative-deep-learning book's LSTM notation):

    note tokens      "C#5" (one pitch, sharps only, octave 4 = middle C's), "C4.E4.G4" (a chord, lowest pitch
                     first), "rest", or "START" (the padding before a piece begins; never written)
    duration tokens  quarter lengths as exact fractions: "1/4" (a sixteenth), "1", "3/2", "1/3" (a triplet
                     eighth), or "START"

Spelling is canonical (MIDI 70 is always "A#4"), so tokens survive a round trip through a MIDI file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

START = "START"
"""The padding token, index 0 of every vocabulary."""
REST = "rest"
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_NAME = re.compile(r"^([A-G])([#-]*)(-?\d+)$")
_STEP_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def note_name(midi: int) -> str:
    """The canonical token of MIDI pitch ``midi`` (0-127): 60 -> "C4", 70 -> "A#4"."""
    return f"{PITCH_CLASSES[midi % 12]}{midi // 12 - 1}"


def pitch_of(name: str) -> int:
    """The MIDI pitch of a pitch name: "C4" -> 60; also music21's spellings with flats "B-4" and "E--4".

    :raises ValueError: ``name`` is not a pitch name.
    """
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a pitch name like 'C4', 'F#3' or 'B-2'")
    letter, accidentals, octave = match.groups()
    return 12 * (int(octave) + 1) + _STEP_SEMITONES[letter] + accidentals.count("#") - accidentals.count("-")


def token_pitches(token: str) -> tuple[int, ...]:
    """The MIDI pitches a note token sounds, lowest first; () for "rest" and "START"."""
    if token in (REST, START):
        return ()
    return tuple(sorted(pitch_of(name) for name in token.split(".")))


def chord_token(pitches: Sequence[int]) -> str:
    """The note token of MIDI pitches sounding together (one pitch: a note token; none: "rest")."""
    return ".".join(note_name(p) for p in sorted(set(pitches))) or REST


def duration_token(quarter_length: float | Fraction) -> str:
    """The duration token of a length in quarter notes: 0.25 -> "1/4", 1.5 -> "3/2" (limited to 1/48ths)."""
    return str(Fraction(quarter_length).limit_denominator(48))


def quarter_length(token: str) -> float:
    """Length in quarter notes of a duration token ("3/2" -> 1.5).

    :raises ValueError: ``token`` is not a positive fraction.
    """
    try:
        value = Fraction(token)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"duration token {token!r} is not a fraction of quarter notes like '1/2' or '3'") from None
    if value <= 0:
        raise ValueError(f"duration token {token!r} must be a positive number of quarter notes")
    return float(value)
