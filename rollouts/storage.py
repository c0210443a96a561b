"""The episode storage format: one compressed ``.npz`` file per episode, a latent file beside it, a manifest.

An episode of T steps is stored as ``episode_{index:06d}.npz`` holding

    observations  (T+1, H, W, C) uint8   the reset frame, then the frame after each action
    actions       (T, A) float32 or (T,) int64
    rewards       (T,) float32
    terminated    (T,) bool               the environment ended (death, finished lap)
    truncated     (T,) bool               the time limit cut the episode
    meta          JSON text: index, seed, env_id, policy

The encode stage writes ``episode_{index:06d}.latents.npz`` beside it with ``mu`` and ``logvar``
(T+1, Z) float32, V's posterior for every frame, and ``vae_identity``, the text naming the V that encoded
them (``worldmodels.checkpoint.vae_identity``; absent from latents written before it was recorded).
``manifest.json`` lists every episode with its seed, length and return; it is derived data, rebuilt from
the files whenever needed.

Readers refuse, with :class:`EpisodeFileError` naming the file, anything but finite numbers of the shapes
above: a file that does not decode (bad zip, CRC or compressed stream, object arrays), or non-finite
actions, rewards or latents.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rollouts.atomic import atomic_write_bytes, atomic_write_text

EPISODE_PATTERN = re.compile(r"^episode_(\d{6,})\.npz$")
MANIFEST_NAME = "manifest.json"
LATENTS_IDENTITY = "vae_identity"
"""The latents file's array naming the V that encoded it."""
_ARRAYS = ("observations", "actions", "rewards", "terminated", "truncated")
_GATHER_AGAIN = "delete it and re-run `worldmodels collect` with the same --out to gather it again"
_ENCODE_AGAIN = "delete it and run `worldmodels encode` to encode the episode again"


class EpisodeFileError(ValueError):
    """An episode (or latent) file is missing, unreadable or malformed; the message names the file."""


@dataclass
class Episode:
    """One recorded episode; see the module docstring for shapes."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Number of steps (actions) T."""
        return int(len(self.actions))

    @property
    def total_reward(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))

    def validate(self, source: str = "episode") -> None:
        """Raise :class:`EpisodeFileError` if the arrays' lengths or dtypes disagree, or an action or reward is
        not finite (NaN or infinite)."""
        steps = len(self.actions)
        if self.observations.dtype != np.uint8 or self.observations.ndim != 4:
            raise EpisodeFileError(f"{source}: observations must be (T+1, H, W, C) uint8, "
                                   f"got {self.observations.shape} {self.observations.dtype}")
        if len(self.observations) != steps + 1:
            raise EpisodeFileError(f"{source}: {len(self.observations)} observations for {steps} actions "
                                   "(expected one more observation than actions)")
        for name in ("actions", "rewards", "terminated", "truncated"):
            array = getattr(self, name)
            if array.dtype.kind not in "biuf":
                raise EpisodeFileError(f"{source}: {name} must hold numbers, got dtype {array.dtype}")
            if name != "actions" and (array.ndim != 1 or len(array) != steps):
                raise EpisodeFileError(f"{source}: {name} has shape {array.shape} for {steps} steps "
                                       f"(expected ({steps},))")
        for name in ("actions", "rewards"):
            problem = non_finite(getattr(self, name), name)
            if problem:
                raise EpisodeFileError(f"{source}: {problem}; every stage needs finite numbers")


def non_finite(array: np.ndarray, name: str) -> str | None:
    """What is wrong when ``array`` (named ``name``) holds NaN or infinite values; None when it does not."""
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), array.shape))
    return f"{name} holds {int(bad.sum())} non-finite values (NaN or infinite; the first at index {first})"


def episode_path(folder: str | Path, index: int) -> Path:
    return Path(folder) / f"episode_{index:06d}.npz"


def latent_path(episode_file: str | Path) -> Path:
    """Where the encode stage stores (mu, logvar) for ``episode_file``."""
    episode_file = Path(episode_file)
    return episode_file.with_name(episode_file.name.removesuffix(".npz") + ".latents.npz")


def list_episode_files(folder: str | Path) -> list[Path]:
    """Episode files in ``folder``, sorted by index; a clear error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"episode folder {folder} does not exist; gather episodes with "
                                f"`worldmodels collect --out {folder}` first")
    files = sorted(p for p in folder.iterdir() if EPISODE_PATTERN.match(p.name))
    if not files:
        raise FileNotFoundError(f"no episode files (episode_NNNNNN.npz) in {folder}; gather episodes with "
                                f"`worldmodels collect --out {folder}` first")
    return files


def episode_to_bytes(episode: Episode) -> bytes:
    """Serialise ``episode`` as a compressed npz, after :meth:`Episode.validate` (an environment that returned a
    NaN reward is refused here, in the worker, before anything is stored)."""
    meta = episode.meta
    episode.validate(f"episode {meta['index']} (seed {meta.get('seed')}, {meta.get('env_id')})"
                     if "index" in meta else "episode")
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        **{name: getattr(episode, name) for name in _ARRAYS},
        meta=np.array(json.dumps(episode.meta)),
    )
    return buffer.getvalue()


def _what_to_do(path: Path) -> str:
    """How to replace a damaged file: encode latents again, gather an episode again."""
    return _ENCODE_AGAIN if path.name.endswith(".latents.npz") else _GATHER_AGAIN


def read_arrays(path: str | Path, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Only the named arrays of an npz file (others are never decompressed), plus those of ``optional`` the file
    holds; every floating-point one checked finite.

    :raises EpisodeFileError: the file is missing, lacks a named array, does not decode, or holds NaN or
        infinite numbers. numpy and zipfile raise many types on damaged bytes (BadZipFile for a bad CRC,
        zlib.error, NotImplementedError, tokenize.TokenError, ValueError for object arrays, ...), so every
        failure of the decoding calls counts.
    """
    path = Path(path)
    if not path.is_file():
        raise EpisodeFileError(f"{path}: file does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [n for n in names if n not in data.files]
            if missing:
                raise EpisodeFileError(f"{path}: missing arrays {missing}; found {data.files}; {_what_to_do(path)}")
            arrays = {n: data[n] for n in (*names, *optional) if n in data.files}
    except EpisodeFileError:
        raise
    except Exception as err:  # any failure to decode the file (see the docstring)
        raise EpisodeFileError(f"{path}: not a readable .npz file ({type(err).__name__}: {err}); "
                               f"{_what_to_do(path)}") from None
    for name, array in arrays.items():
        problem = non_finite(array, name) if array.dtype.kind == "f" else None
        if problem:
            raise EpisodeFileError(f"{path}: {problem}; {_what_to_do(path)}")
    return arrays


def _parse_meta(path: Path, text: np.ndarray) -> dict[str, Any]:
    """The JSON object stored as ``meta``."""
    try:
        meta = json.loads(str(text))
    except ValueError as err:
        raise EpisodeFileError(f"{path}: meta is not JSON ({err}); {_GATHER_AGAIN}") from None
    if not isinstance(meta, dict):
        raise EpisodeFileError(f"{path}: meta is not a JSON object; {_GATHER_AGAIN}")
    return meta


def read_episode_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta`` record of an episode file, reading nothing else."""
    path = Path(path)
    return _parse_meta(path, read_arrays(path, ("meta",))["meta"])


def read_episode(path: str | Path) -> Episode:
    """Load and validate a whole episode file (every array decompressed, so every CRC checked)."""
    path = Path(path)
    arrays = read_arrays(path, (*_ARRAYS, "meta"))
    episode = Episode(**{n: arrays[n] for n in _ARRAYS}, meta=_parse_meta(path, arrays["meta"]))
    try:
        episode.validate(str(path))
    except EpisodeFileError as err:
        raise EpisodeFileError(f"{err}; {_GATHER_AGAIN}") from None
    return episode


def write_latents(episode_file: str | Path, mu: np.ndarray, logvar: np.ndarray,
                  vae_identity: str | None = None) -> Path:
    """Store V's posterior (T+1, Z) for ``episode_file`` beside it, atomically.

    :param vae_identity: the V that encoded them (``worldmodels.checkpoint.vae_identity``); None (stand-in
        latents of tests) records none.
    """
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(f"mu and logvar must both be (T+1, Z), got {mu.shape} and {logvar.shape}")
    identity = {} if vae_identity is None else {LATENTS_IDENTITY: np.array(vae_identity)}
    buffer = io.BytesIO()
    np.savez(buffer, mu=mu.astype(np.float32), logvar=logvar.astype(np.float32), **identity)
    target = latent_path(episode_file)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def _existing_latents(episode_file: str | Path) -> Path:
    path = latent_path(episode_file)
    if not path.exists():
        raise EpisodeFileError(f"{path}: no latents for {Path(episode_file).name}; run `worldmodels encode` first")
    return path


def read_latents(episode_file: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar), each (T+1, Z) float32 and finite, stored for ``episode_file`` by the encode stage."""
    path = _existing_latents(episode_file)
    arrays = read_arrays(path, ("mu", "logvar"))
    mu, logvar = arrays["mu"], arrays["logvar"]
    if mu.shape != logvar.shape or mu.ndim != 2 or mu.dtype.kind != "f" or logvar.dtype.kind != "f":
        raise EpisodeFileError(f"{path}: mu and logvar must both be (T+1, Z) floats, got {mu.shape} {mu.dtype} "
                               f"and {logvar.shape} {logvar.dtype}; {_ENCODE_AGAIN}")
    return mu, logvar


def read_latents_identity(episode_file: str | Path) -> str | None:
    """The identity of the V that encoded ``episode_file``'s latents (see :func:`write_latents`); None for
    latents that record none."""
    path = _existing_latents(episode_file)
    identity = read_arrays(path, (), optional=(LATENTS_IDENTITY,)).get(LATENTS_IDENTITY)
    return None if identity is None else str(identity)


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it is missing or unreadable (it can always be rebuilt)."""
    try:
        return json.loads((Path(folder) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def episode_lengths(files: list[Path]) -> list[int]:
    """Steps T of each episode file, from the manifest when it covers them, else from each file's meta."""
    by_name: dict[str, int] = {}
    for folder in {f.parent for f in files}:
        manifest = read_manifest(folder) or {}
        by_name.update({str(folder / e["file"]): int(e["length"]) for e in manifest.get("entries", [])})
    return [by_name[str(f)] if str(f) in by_name else int(read_episode_meta(f)["length"]) for f in files]


def write_manifest(folder: str | Path, entries: list[dict[str, Any]]) -> None:
    """Write ``manifest.json`` (episodes sorted by index) atomically."""
    entries = sorted(entries, key=lambda e: e["index"])
    summary = {
        "episodes": len(entries),
        "frames": int(sum(e["length"] + 1 for e in entries)),
        "env_ids": sorted({e["env_id"] for e in entries}),
        "entries": entries,
    }
    atomic_write_text(Path(folder) / MANIFEST_NAME, json.dumps(summary, indent=1))


def manifest_entry(file: Path, episode_meta: dict[str, Any]) -> dict[str, Any]:
    """One manifest row: the episode's meta plus its file name, size (``bytes``) and modification time
    (``mtime_ns``), which tell a resumed collection that the file is the one listed
    (``rollouts.collect.scan_existing``)."""
    stat = file.stat()
    return {**episode_meta, "file": file.name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
