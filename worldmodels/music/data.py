"""Music data: the Bach chorales music21 ships (or a folder of MIDI / MusicXML files) as note and duration token
sequences and as four-voice piano-rolls, parsed once and cached in one ``.npz`` file.

Tokens (``envs.music_notation``): ``music.tokens`` "melody" reads the first part (a chorale's soprano), one
token per note or rest (a chord there gives its top pitch); "chords" reads all parts sounding together (the
book's ``chordify``). Ties are merged, grace notes and trailing rests dropped.

Piano-rolls: the first four parts, sampled every sixteenth note (4 steps a quarter note, so a 16-step bar is
four quarter notes), starting at the first full bar (after a pickup): an (T, 4) int16 array per piece of the
MIDI pitch each voice sounds at each step, -1 for silence (a chord gives its top pitch). Pieces with fewer
than four parts have none.

The cache (``music_corpus.npz``, written atomically) records which source, limit and token mode it holds; a
cache of other settings is replaced by a fresh parse, an unreadable one is an error.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from envs.music_notation import REST, START, chord_token, duration_token, quarter_length, token_pitches
from rollouts.atomic import atomic_path
from worldmodels.config_schema import MusicConfig
from worldmodels.run_layout import MUSIC_CORPUS_NAME

log = logging.getLogger(__name__)

SUFFIXES = (".mid", ".midi", ".xml", ".mxl", ".musicxml")
"""File endings read from a music folder (any case)."""
TRACKS = 4
"""Voices of a piano-roll: soprano, alto, tenor, bass."""
STEPS_PER_QUARTER = 4
STEPS_PER_BAR = 16
CACHE_FORMAT = 1


class MusicDataError(ValueError):
    """Music files or a music cache cannot be used; the message names the file and what to do."""


@dataclass
class MusicCorpus:
    """Parsed pieces: for piece i, ``notes[i]`` and ``durations[i]`` (parallel token lists) and ``voices[i]``
    ((T_i, 4) int16 MIDI pitches per sixteenth step, -1 silent; T_i = 0 for pieces of fewer than 4 parts)."""

    names: list[str]
    notes: list[list[str]]
    durations: list[list[str]]
    voices: list[np.ndarray]

    def pitch_range(self) -> tuple[int, int]:
        """Lowest and highest MIDI pitch of the piano-rolls.

        :raises MusicDataError: no piece has four voices.
        """
        sounding = [v[v >= 0] for v in self.voices if v.size]
        if not any(s.size for s in sounding):
            raise MusicDataError(f"none of the {len(self.names)} pieces has {TRACKS} voices with notes, so there "
                                 "are no piano-rolls; use four-part music (the Bach chorales have four)")
        values = np.concatenate(sounding)
        return int(values.min()), int(values.max())


def source_names(config: MusicConfig) -> list[str]:
    """What :func:`parse_piece` reads: music21 corpus paths of the chorales (music21's order), or the files of
    ``config.folder`` (recursively, sorted); at most ``config.limit``.

    :raises MusicDataError: the folder does not exist or holds no MIDI / MusicXML file.
    """
    if config.folder is None:
        from music21 import corpus

        names = list(corpus.chorales.Iterator(returnType="filename"))
    else:
        folder = Path(config.folder)
        if not folder.is_dir():
            raise MusicDataError(f"music folder {folder} does not exist; set music.folder to a folder of MIDI or "
                                 "MusicXML files, or to null for the Bach chorales")
        names = sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not names:
            raise MusicDataError(f"music folder {folder} holds no MIDI or MusicXML file (endings "
                                 f"{', '.join(SUFFIXES)}); put some there, or set music.folder=null for the Bach "
                                 "chorales")
    return names[: config.limit]


def parse_piece(name: str, from_corpus: bool):
    """The music21 score of a corpus path or a file.

    :raises MusicDataError: music21 cannot read it.
    """
    from music21 import converter, corpus

    try:
        return corpus.parse(name) if from_corpus else converter.parse(name)
    except Exception as err:  # noqa: BLE001  (music21 raises many types for unreadable files)
        raise MusicDataError(f"music file {name} could not be parsed ({type(err).__name__}: {err}); "
                             "fix or remove it") from None


def score_tokens(score, mode: str) -> tuple[list[str], list[str]]:
    """Note and duration tokens of ``score`` (a music21 Score): its first part ("melody") or all parts
    together ("chords"); ties merged, grace notes and trailing rests dropped."""
    part = score.parts[0] if mode == "melody" else score.chordify()
    notes, durations = [], []
    for element in part.stripTies().flatten().notesAndRests:
        length = element.duration.quarterLength
        if length <= 0:
            continue
        pitches = [p.midi for p in getattr(element, "pitches", ())]
        if mode == "melody" and pitches:
            pitches = [max(pitches)]
        notes.append(chord_token(pitches))
        durations.append(duration_token(length))
    while notes and notes[-1] == REST:
        notes.pop()
        durations.pop()
    return notes, durations


def score_voices(score) -> np.ndarray:
    """(T, 4) int16 piano-roll of ``score``'s first four parts from its first full bar (see the module
    docstring); (0, 4) when it has fewer than four parts."""
    from music21 import stream

    if len(score.parts) < TRACKS:
        return np.zeros((0, TRACKS), dtype=np.int16)
    measures = score.parts[0].getElementsByClass(stream.Measure)
    start = next((float(m.offset) for m in measures if m.number >= 1), 0.0)
    total = round((float(score.highestTime) - start) * STEPS_PER_QUARTER)
    voices = np.full((max(total, 0), TRACKS), -1, dtype=np.int16)
    for track, part in enumerate(score.parts[:TRACKS]):
        for element in part.stripTies().flatten().notes:
            begin = round((float(element.offset) - start) * STEPS_PER_QUARTER)
            end = round((float(element.offset + element.duration.quarterLength) - start) * STEPS_PER_QUARTER)
            voices[max(begin, 0):max(end, 0), track] = max(p.midi for p in element.pitches)
    return voices


def _meta(config: MusicConfig) -> dict:
    return {"format": CACHE_FORMAT, "folder": config.folder, "limit": config.limit, "tokens": config.tokens}


def parse_corpus(config: MusicConfig) -> MusicCorpus:
    """Parse every piece ``config`` names (about 0.15 s a chorale)."""
    names = source_names(config)
    corpus = MusicCorpus([], [], [], [])
    for name in names:
        score = parse_piece(name, from_corpus=config.folder is None)
        notes, durations = score_tokens(score, config.tokens)
        corpus.names.append(name)
        corpus.notes.append(notes)
        corpus.durations.append(durations)
        corpus.voices.append(score_voices(score))
    log.info("music: parsed %d pieces, %d tokens, %d piano-roll steps", len(names),
             sum(map(len, corpus.notes)), sum(len(v) for v in corpus.voices))
    return corpus


def save_corpus(corpus: MusicCorpus, config: MusicConfig, path: str | Path) -> None:
    """Write ``corpus`` and the settings it was parsed with to ``path`` (.npz), atomically."""
    lengths = np.array([len(n) for n in corpus.notes], dtype=np.int64)
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        np.savez(file, meta=np.array(json.dumps(_meta(config))), names=np.array(corpus.names, dtype=str),
                 notes=np.array(list(chain.from_iterable(corpus.notes)), dtype=str),
                 durations=np.array(list(chain.from_iterable(corpus.durations)), dtype=str), token_lengths=lengths,
                 voices=np.concatenate([*corpus.voices, np.zeros((0, TRACKS), np.int16)]),
                 voice_lengths=np.array([len(v) for v in corpus.voices], dtype=np.int64))


def read_corpus(path: str | Path) -> tuple[dict, MusicCorpus]:
    """The settings and corpus stored by :func:`save_corpus`.

    :raises MusicDataError: the file is truncated, corrupt or not a music cache.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            names = [str(n) for n in data["names"]]
            cuts = np.cumsum(data["token_lengths"])[:-1]
            notes = [list(map(str, a)) for a in np.split(data["notes"], cuts)] if names else []
            durations = [list(map(str, a)) for a in np.split(data["durations"], cuts)] if names else []
            voices = np.split(data["voices"].astype(np.int16), np.cumsum(data["voice_lengths"])[:-1]) if names else []
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise MusicDataError(f"music cache {path} is unreadable ({type(err).__name__}: {err}); delete it and run "
                             "again to parse the music anew") from None
    if not (len(names) == len(notes) == len(durations) == len(voices)):
        raise MusicDataError(f"music cache {path} is inconsistent ({len(names)} names, {len(notes)} token "
                             f"sequences, {len(voices)} piano-rolls); delete it and run again to parse the music anew")
    return meta, MusicCorpus(names, notes, durations, list(voices))


def load_corpus(config: MusicConfig, cache_dir: str | Path) -> MusicCorpus:
    """The corpus ``config`` describes, from ``cache_dir/music_corpus.npz`` when that holds the same settings,
    else parsed and cached there.

    :raises MusicDataError: see :func:`source_names`, :func:`parse_piece`, :func:`read_corpus`; or no piece
        yields tokens.
    """
    path = Path(cache_dir) / MUSIC_CORPUS_NAME
    if path.exists():
        meta, corpus = read_corpus(path)
        if meta == _meta(config):
            return corpus
        log.info("music: %s holds other settings (%s); parsing anew", path, meta)
    corpus = parse_corpus(config)
    if not any(corpus.notes):
        raise MusicDataError(f"the {len(corpus.names)} pieces parsed hold no notes; check music.folder")
    save_corpus(corpus, config, path)
    return corpus


def vocabulary(sequences: list[list[str]], kind: str) -> list[str]:
    """START, then every token of ``sequences`` once: notes ordered by pitch (rest first), durations by length.

    :param kind: "notes" or "durations".
    """
    tokens = {t for sequence in sequences for t in sequence}
    key = (lambda t: (token_pitches(t), t)) if kind == "notes" else quarter_length
    return [START, *sorted(tokens, key=key)]


def token_windows(corpus: MusicCorpus, notes: list[str], durations: list[str],
                  seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training pairs for the LSTM: each token of each piece with the ``seq_len`` tokens before it (START
    before the piece begins), as vocabulary indices.

    :returns: input notes and durations (N, seq_len) int64, target notes and durations (N,) int64.
    """
    note_index = {t: i for i, t in enumerate(notes)}
    duration_index = {t: i for i, t in enumerate(durations)}
    windows: list[np.ndarray] = []
    for piece_notes, piece_durations in zip(corpus.notes, corpus.durations):
        n = np.array([0] * seq_len + [note_index[t] for t in piece_notes], dtype=np.int64)
        d = np.array([0] * seq_len + [duration_index[t] for t in piece_durations], dtype=np.int64)
        if len(piece_notes):
            windows.append(np.stack([np.lib.stride_tricks.sliding_window_view(n, seq_len + 1),
                                     np.lib.stride_tricks.sliding_window_view(d, seq_len + 1)]))  # (2, L, S+1)
    stacked = np.concatenate(windows, axis=1)
    return stacked[0, :, :-1], stacked[1, :, :-1], stacked[0, :, -1], stacked[1, :, -1]


def roll_chunks(corpus: MusicCorpus, bars: int) -> np.ndarray:
    """Consecutive non-overlapping sections of ``bars`` bars of every piano-roll: (N, bars, 16, 4) int16 MIDI
    pitches, -1 silent; a piece's incomplete last section is dropped."""
    size = bars * STEPS_PER_BAR
    chunks = [v[: len(v) // size * size].reshape(-1, bars, STEPS_PER_BAR, TRACKS) for v in corpus.voices]
    return np.concatenate([np.zeros((0, bars, STEPS_PER_BAR, TRACKS), np.int16), *chunks])
