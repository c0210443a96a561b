"""Training checkpoints: one atomically written file per stage that rebuilds the model and resumes its training.

A checkpoint (``torch.save`` of plain dicts and tensors, read back with ``weights_only=True``) holds

    format          int     CHECKPOINT_FORMAT
    kind            str     "vae", "mdnrnn", "cnn", "gan", "cyclegan", "char_lstm", "music_lstm" or "musegan":
                            which model class ``model_args`` builds
    model_args      dict    the model's constructor keyword arguments (z_size, action_size, ...)
    model           dict    the model's state_dict (tensors on the CPU once loaded)
    optimizer       dict    the optimiser's state_dict
    config          dict    the stage's config section (``VAEConfig`` / ``MDNRNNConfig``) as plain values
    step            int     optimiser steps taken
    epoch           int     the epoch the next batch belongs to (0-based)
    epoch_batches   int     batches of that epoch already consumed
    rng             dict    torch's global CPU generator state, and the CUDA ones when there were any
    vae_identity    str     optional: the V whose latents the model trained on (:func:`vae_identity`), e.g. a
                            GAN drawing V's z; absent or None otherwise

Loading never runs pickled code, never modifies the file, checks the zip's CRCs and every field's type, and
checks every tensor's shape against the model (and that it is finite) before copying, so a damaged file or a
checkpoint of another configuration fails with one :class:`CheckpointError` naming the file (and the parameter).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import types
import typing
import zipfile
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn as nn

from rollouts.atomic import atomic_path

if TYPE_CHECKING:
    from worldmodels.components.char_lstm import CharLSTM
    from worldmodels.components.cyclegan import CycleGAN
    from worldmodels.components.gan import GAN
    from worldmodels.mdnrnn import MDNRNN
    from worldmodels.music.lstm import MusicLSTM
    from worldmodels.music.musegan import MuseGAN
    from worldmodels.vae import ConvVAE

CHECKPOINT_FORMAT = 1
MODEL_CLASSES: dict[str, str] = {
    "vae": "worldmodels.vae:ConvVAE",
    "mdnrnn": "worldmodels.mdnrnn:MDNRNN",
    "cnn": "worldmodels.components.cnn:FramePredictor",
    "gan": "worldmodels.components.gan:GAN",
    "cyclegan": "worldmodels.components.cyclegan:CycleGAN",
    "char_lstm": "worldmodels.components.char_lstm:CharLSTM",
    "music_lstm": "worldmodels.music.lstm:MusicLSTM",
    "musegan": "worldmodels.music.musegan:MuseGAN",
}
"""The model class each checkpoint ``kind`` rebuilds, as ``module:Class``: a class is imported only when a checkpoint
of its kind is loaded (loading V does not import MuseGAN)."""


def model_class(kind: str) -> type[nn.Module]:
    """The model class of checkpoint ``kind`` (a key of :data:`MODEL_CLASSES`), imported now."""
    module, name = MODEL_CLASSES[kind].split(":")
    return getattr(importlib.import_module(module), name)


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not fit the model; the message names the file."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file; see the module docstring for each field."""

    kind: str
    model_args: dict[str, Any]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    config: dict[str, Any]
    step: int
    epoch: int
    epoch_batches: int
    rng: dict[str, Any]
    vae_identity: str | None = None


def capture_rng_state() -> dict[str, Any]:
    """torch's global random state: the CPU generator, plus every CUDA device's when CUDA is initialised."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` took (CUDA states only when this machine has as many devices)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically: a crash mid-write leaves the previous file intact."""
    record = {"format": CHECKPOINT_FORMAT, **{f.name: getattr(checkpoint, f.name) for f in fields(Checkpoint)}}
    save_record(path, record)


def save_record(path: str | Path, record: dict[str, Any]) -> None:
    """``torch.save`` of ``record`` (plain data and tensors) to ``path``, atomically, the same bytes for the same
    record: saved through an open file, not a file name, torch names the zip's folder "archive" rather than after
    the temporary file, whose random name would give every save of the same weights another SHA-256 (and every
    report that records the file's digest another provenance)."""
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        torch.save(record, file)


def read_checkpoint(path: str | Path, kind: str | None = None) -> Checkpoint:
    """Read a checkpoint file onto the CPU, with ``weights_only=True``.

    :param kind: the ``kind`` the caller needs (a key of :data:`MODEL_CLASSES`); None accepts any.
    :raises FileNotFoundError: there is no such file.
    :raises CheckpointError: the file is not a readable checkpoint of this format (text, random bytes, empty,
        truncated, a bad CRC, other objects, fields of the wrong type), or of another kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    unreadable = ("it is truncated, corrupt, or holds objects other than tensors and plain containers: move it "
                  "away to train from scratch")
    try:
        record = load_weights_only(path)
    except UnreadableFileError as err:
        raise CheckpointError(f"checkpoint {path} is {err}; {unreadable}") from None
    required = [f.name for f in fields(Checkpoint) if f.default is MISSING]
    if (not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT
            or any(n not in record for n in required)):
        found = sorted(map(str, record)) if isinstance(record, dict) else type(record).__name__
        raise CheckpointError(
            f"checkpoint {path} is not a worldmodels training checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found {found}; expected format, {', '.join(required)})"
        )
    _check_field_types(record, path)
    checkpoint = Checkpoint(**{f.name: record[f.name] for f in fields(Checkpoint) if f.name in record})
    if checkpoint.kind not in MODEL_CLASSES or (kind is not None and checkpoint.kind != kind):
        wanted = kind or " or ".join(MODEL_CLASSES)
        raise CheckpointError(f"checkpoint {path} holds a {checkpoint.kind!r} model, expected {wanted!r}")
    return checkpoint


def model_args_of(settings: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments from settings keyed ``"section.name"``: each argument is named as its setting's field
    (``{"vae.z_size": 32}`` gives ``{"z_size": 32}``)."""
    return {key.rpartition(".")[2]: value for key, value in settings.items()}


def read_model_args(path: str | Path, kind: str) -> dict[str, Any]:
    """The constructor arguments a ``kind`` checkpoint records, every argument it left out at the model class's
    default; the tensors are memory-mapped, not read (a cheap look at a model's shape; :func:`read_checkpoint`
    checks the whole file).

    :raises FileNotFoundError: there is no such file.
    :raises CheckpointError: the file is not a checkpoint of this format and kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch.load raises many types on damaged bytes (KeyError, IndexError, ...)
        raise CheckpointError(f"checkpoint {path} is not a readable torch checkpoint "
                              f"({_failure_reason(err)})") from None
    if (not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT or record.get("kind") != kind
            or not isinstance(record.get("model_args"), dict)):
        raise CheckpointError(f"checkpoint {path} is not a worldmodels {kind!r} checkpoint of format "
                              f"{CHECKPOINT_FORMAT}")
    defaults = {name: parameter.default for name, parameter in
                inspect.signature(model_class(kind)).parameters.items() if parameter.default is not parameter.empty}
    return {**defaults, **record["model_args"]}


def _check_field_types(record: dict[str, Any], path: Path) -> None:
    """Raise :class:`CheckpointError` unless each field of ``record`` has the type :class:`Checkpoint` declares
    (its outer type: dict, str, int) and ``model`` maps names to tensors."""
    hints = typing.get_type_hints(Checkpoint)
    for name, hint in hints.items():
        origin = typing.get_origin(hint)
        allowed = typing.get_args(hint) if origin is types.UnionType else (origin or hint,)
        if name in record and not isinstance(record[name], allowed):
            raise CheckpointError(f"checkpoint {path}: field {name!r} is a {type(record[name]).__name__}, expected "
                                  f"{' or '.join(t.__name__ for t in allowed)}; the file is not a worldmodels "
                                  "checkpoint: move it away to train from scratch")
    wrong = [str(k) for k, v in record["model"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if wrong:
        raise CheckpointError(f"checkpoint {path}: the model's state holds entries that are not named tensors "
                              f"({', '.join(wrong[:3])}); move it away to train from scratch")


class UnreadableFileError(ValueError):
    """A torch file that does not load with ``weights_only=True``, or whose zip has a bad CRC; the message says which
    ("not a readable torch checkpoint (reason)" or "damaged (bad CRC in member)"), for the caller to name the file."""


def load_weights_only(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU (tensors and plain containers only: nothing in the file
    runs), after checking the CRCs of the zip torch writes, which ``torch.load`` does not.

    :raises UnreadableFileError: the file is truncated, corrupt, holds other objects, or has a bad CRC.
    """
    try:
        damaged = None
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types on damaged bytes (KeyError, IndexError, ...)
        raise UnreadableFileError(f"not a readable torch checkpoint ({_failure_reason(err)})") from None
    if damaged:
        raise UnreadableFileError(f"damaged (bad CRC in {damaged})")
    return record


def _failure_reason(err: Exception) -> str:
    """The informative line of a ``torch.load`` error (its weights-only unpickler's own, when there is one)."""
    text = str(err).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].strip()
    sentence = (text.splitlines() or ["empty or truncated file"])[0].split(". ")[0]
    return f"{type(err).__name__}: {sentence[:200]}"


def vae_identity(path: str | Path) -> str:
    """The identity of the V stored in ``path`` (a ``train-vae`` checkpoint): its step and a hash of its weights,
    e.g. ``"step 1200, weights 3f2a9c0d1e2b4a5c"``. Latents files and GANs drawing V's z record it, so data of
    another V is told apart whatever the files' names, copies or times.

    :raises FileNotFoundError: there is no such file.
    :raises CheckpointError: it is not a readable V checkpoint.
    """
    checkpoint = read_checkpoint(path, kind="vae")
    digest = hashlib.sha256()
    for name, tensor in sorted(checkpoint.model.items()):
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype};".encode())
        digest.update(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"step {checkpoint.step}, weights {digest.hexdigest()[:16]}"


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Copy ``state`` into ``model`` after checking every name and shape (``path`` is named in errors).

    :raises CheckpointError: a parameter is missing, unexpected, or of another shape; nothing is copied then.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit the {type(model).__name__}: parameters missing from the file: "
            f"{missing or 'none'}; parameters the model does not have: {unexpected or 'none'}"
        )
    mismatched = [
        f"{name} is {tuple(state[name].shape)} in the file but {tuple(tensor.shape)} in the model"
        for name, tensor in expected.items()
        if state[name].shape != tensor.shape
    ]
    if mismatched:
        raise CheckpointError(
            f"checkpoint {path} does not fit the {type(model).__name__} built from this configuration: "
            f"{'; '.join(mismatched)}. Use the configuration the checkpoint was trained with (saved in its "
            "run folder), or a new run folder to train from scratch"
        )
    non_finite = [name for name, tensor in state.items()
                  if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if non_finite:
        raise CheckpointError(f"checkpoint {path} holds non-finite (NaN or infinite) weights in "
                              f"{', '.join(non_finite[:3])}{' and more' if len(non_finite) > 3 else ''}: the file "
                              "is damaged or its training diverged; move it away to train from scratch")
    model.load_state_dict(state)


@dataclass(frozen=True, eq=False)
class ModelWeights:
    """A trained model as plain data (its kind, constructor arguments and weights), read once from a checkpoint.

    This is what Ray workers receive through the object store instead of a path on the driver's disk (a node of
    a cluster may share no disk with the driver). Only a dict of tensors travels, never a pickled module: the
    worker rebuilds the model of ``MODEL_CLASSES[kind]`` itself and checks every weight (:meth:`build`).
    """

    kind: str
    """A key of :data:`MODEL_CLASSES`."""
    model_args: dict[str, Any]
    """The model's constructor keyword arguments."""
    model: dict[str, torch.Tensor]
    """The model's state_dict, CPU tensors."""
    source: str
    """The checkpoint file they were read from, named in errors."""

    @classmethod
    def read(cls, path: str | Path, kind: str) -> ModelWeights:
        """The model of the ``kind`` checkpoint in ``path`` (see :func:`read_checkpoint` for what is checked and
        raised); its optimiser and random states are left behind."""
        checkpoint = read_checkpoint(path, kind=kind)
        return cls(kind, checkpoint.model_args, checkpoint.model, str(path))

    def build(self, device: torch.device | str = "cpu") -> nn.Module:
        """A fresh model of this kind and constructor arguments, holding these weights, on ``device``, in eval mode.

        :raises CheckpointError: the arguments do not build the model, or a weight is missing, unexpected, of
            another shape or not finite (naming :attr:`source`).
        """
        cls = model_class(self.kind)
        try:
            model = cls(**self.model_args)
        except (TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {self.source}: model_args {self.model_args} do not build a "
                                  f"{cls.__name__} ({err})") from None
        load_model_state(model, self.model, self.source)
        return model.eval().to(device)


def _load(source: str | Path | ModelWeights, kind: str, device: torch.device | str) -> nn.Module:
    """The model of the ``kind`` checkpoint stored in ``source`` (a path, or weights already read), on ``device``,
    in eval mode."""
    weights = source if isinstance(source, ModelWeights) else ModelWeights.read(source, kind)
    if weights.kind != kind:
        raise CheckpointError(f"checkpoint {weights.source} holds a {weights.kind!r} model, expected {kind!r}")
    return weights.build(device)


def load_vae(path: str | Path | ModelWeights, device: torch.device | str = "cpu") -> ConvVAE:
    """The trained V stored in ``path`` (a ``train-vae`` checkpoint, or its :class:`ModelWeights` already read), on
    ``device``, in eval mode."""
    return cast("ConvVAE", _load(path, "vae", device))


def load_mdnrnn(path: str | Path | ModelWeights, device: torch.device | str = "cpu") -> MDNRNN:
    """The trained M stored in ``path`` (a ``train-mdnrnn`` checkpoint, or its :class:`ModelWeights` already read),
    on ``device``, in eval mode."""
    return cast("MDNRNN", _load(path, "mdnrnn", device))


def load_gan(path: str | Path, device: torch.device | str = "cpu") -> GAN:
    """The trained GAN stored in ``path`` (a ``train-gan`` checkpoint), on ``device``, in eval mode; its
    ``generate(n)`` gives (n, 64, 64, C) uint8 frames."""
    return cast("GAN", _load(path, "gan", device))


def load_cyclegan(path: str | Path | ModelWeights, device: torch.device | str = "cpu") -> CycleGAN:
    """The trained CycleGAN stored in ``path`` (a ``train-cyclegan`` checkpoint, or its :class:`ModelWeights` already
    read), on ``device``, in eval mode; its ``translate(frames, "ab" | "ba")`` maps (N, 64, 64, C) uint8 frames
    between the domains."""
    return cast("CycleGAN", _load(path, "cyclegan", device))


def load_char_lstm(path: str | Path, device: torch.device | str = "cpu") -> CharLSTM:
    """The trained character LSTM stored in ``path`` (a ``train-text`` checkpoint, vocabulary included), on
    ``device``, in eval mode; its ``generate(seed_text, length, temperature)`` writes text."""
    return cast("CharLSTM", _load(path, "char_lstm", device))


def load_music_lstm(path: str | Path, device: torch.device | str = "cpu") -> MusicLSTM:
    """The trained music LSTM stored in ``path`` (a ``music train --model lstm`` checkpoint, vocabularies included),
    on ``device``, in eval mode; its ``compose(quarters, temperature)`` writes tokens."""
    return cast("MusicLSTM", _load(path, "music_lstm", device))


def load_musegan(path: str | Path, device: torch.device | str = "cpu") -> MuseGAN:
    """The trained MuseGAN stored in ``path`` (a ``music train --model musegan`` checkpoint), on ``device``, in eval
    mode; its ``generate(n)`` gives (n, bars, 16, 4) MIDI pitches."""
    return cast("MuseGAN", _load(path, "musegan", device))


def save_untrained_checkpoint(path: str | Path, kind: str, model_args: dict[str, Any]) -> None:
    """Write a freshly initialised model of ``kind`` as a step-0 checkpoint (for tests and benchmarks:
    rollout cost does not depend on the weights)."""
    model = model_class(kind)(**model_args)
    save_checkpoint(path, Checkpoint(kind, model_args, model.state_dict(), {}, {}, 0, 0, 0, {}))
