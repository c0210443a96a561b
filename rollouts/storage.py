"""The episode storage format: one compressed ``.npz`` file per episode, a latent file beside it, a manifest.

An episode of T steps is stored as ``episode_{index:06d}.npz`` holding

    observations  (T+1, H, W, C) uint8   the reset frame, then the frame after each action
    actions       (T, A) float32 or (T,) int64
    rewards       (T,) float32
    terminated    (T,) bool               the environment ended (death, finished lap)
    truncated     (T,) bool               the time limit cut the episode
    meta          JSON text: index, seed, env_id, policy

The encode stage writes ``episode_{index:06d}.latents.npz`` beside it with ``mu`` and ``logvar``
(T+1, Z) float32, V's posterior for every frame. ``manifest.json`` lists every episode with its seed,
length and return; it is derived data, rebuilt from the files whenever needed.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rollouts.atomic import atomic_write_bytes, atomic_write_text

EPISODE_PATTERN = re.compile(r"^episode_(\d{6,})\.npz$")
MANIFEST_NAME = "manifest.json"
_ARRAYS = ("observations", "actions", "rewards", "terminated", "truncated")


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
        """Raise :class:`EpisodeFileError` if the arrays' lengths or dtypes disagree."""
        steps = len(self.actions)
        if self.observations.dtype != np.uint8 or self.observations.ndim != 4:
            raise EpisodeFileError(f"{source}: observations must be (T+1, H, W, C) uint8, "
                                   f"got {self.observations.shape} {self.observations.dtype}")
        if len(self.observations) != steps + 1:
            raise EpisodeFileError(f"{source}: {len(self.observations)} observations for {steps} actions "
                                   "(expected one more observation than actions)")
        for name in ("rewards", "terminated", "truncated"):
            if len(getattr(self, name)) != steps:
                raise EpisodeFileError(f"{source}: {name} has {len(getattr(self, name))} entries for {steps} steps")


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
    """Serialise ``episode`` as a compressed npz (what :func:`write_episode` stores)."""
    episode.validate()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        **{name: getattr(episode, name) for name in _ARRAYS},
        meta=np.array(json.dumps(episode.meta)),
    )
    return buffer.getvalue()


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise EpisodeFileError(f"{path}: file does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise EpisodeFileError(f"{path}: not a readable .npz file ({err}); delete it and re-run "
                               "`worldmodels collect` with the same --out to gather it again") from None


def read_arrays(path: str | Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Only the named arrays of an npz file (others are never decompressed)."""
    path = Path(path)
    with _open_npz(path) as data:
        missing = [n for n in names if n not in data.files]
        if missing:
            raise EpisodeFileError(f"{path}: missing arrays {missing}; found {data.files}")
        try:
            return {n: data[n] for n in names}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise EpisodeFileError(f"{path}: corrupt data ({err}); delete it and re-run "
                                   "`worldmodels collect` with the same --out to gather it again") from None


def read_episode_meta(path: str | Path) -> dict[str, Any]:
    """The ``meta`` record of an episode file, reading nothing else."""
    path = Path(path)
    meta = json.loads(str(read_arrays(path, ("meta",))["meta"]))
    if not isinstance(meta, dict):
        raise EpisodeFileError(f"{path}: meta is not a JSON object")
    return meta


def read_episode(path: str | Path) -> Episode:
    """Load and validate a whole episode file."""
    path = Path(path)
    arrays = read_arrays(path, (*_ARRAYS, "meta"))
    meta = json.loads(str(arrays.pop("meta")))
    episode = Episode(**arrays, meta=meta)
    episode.validate(str(path))
    return episode


def write_latents(episode_file: str | Path, mu: np.ndarray, logvar: np.ndarray) -> Path:
    """Store V's posterior (T+1, Z) for ``episode_file`` beside it, atomically."""
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(f"mu and logvar must both be (T+1, Z), got {mu.shape} and {logvar.shape}")
    buffer = io.BytesIO()
    np.savez(buffer, mu=mu.astype(np.float32), logvar=logvar.astype(np.float32))
    target = latent_path(episode_file)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def read_latents(episode_file: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar), each (T+1, Z) float32, stored for ``episode_file`` by the encode stage."""
    path = latent_path(episode_file)
    if not path.exists():
        raise EpisodeFileError(f"{path}: no latents for {Path(episode_file).name}; run `worldmodels encode` first")
    arrays = read_arrays(path, ("mu", "logvar"))
    return arrays["mu"], arrays["logvar"]


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
    """One manifest row: the episode's meta plus its file name."""
    return {**episode_meta, "file": file.name}
