"""Agents as single files: a finished run's V, M and C in half precision, exported, shipped and unpacked.

An agent file (:func:`export_agent`, ``worldmodels export-agent``) is one ``torch.save`` of plain data, read back
with ``weights_only=True`` (nothing in it can run code):

    format      int     AGENT_FORMAT
    config      str     the run's configuration, as config.yaml
    vae         dict    model_args (dict) and model (the state dict, float16 tensors)
    mdnrnn      dict    likewise
    controller  Tensor  (D,) float32: the controller, CMA-ES's mean solution
    source      str     the run folder and controller file it was exported from

The agents shipped inside the package live in ``worldmodels/pretrained_agents/<name>/`` (``worldmodels.agent_layout``):
``agent.pt`` and ``MODEL_CARD.md`` (data, commands, seeds, compute and scores). Commands take ``--pretrained NAME`` (a
shipped name, or the path of an agent file) in place of ``--run``: the agent is unpacked once into a run folder of the
cache (:func:`unpack_agent`), named after the file's SHA-256, holding float32 checkpoints of the half-precision
weights, ``controller/mean.npy`` and ``config.yaml``; the command then runs on that folder as on any run. The scores in
a model card are those of the shipped half-precision weights, measured through ``--pretrained``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from rollouts.atomic import atomic_write_text
from worldmodels.agent_layout import AGENT_FILE_NAME, MODEL_CARD_NAME, SHIPPED_DIR, shipped_agents
from worldmodels.checkpoint import (
    Checkpoint,
    ModelWeights,
    UnreadableFileError,
    load_weights_only,
    save_checkpoint,
    save_record,
)
from worldmodels.config import ConfigError, config_to_dict, load_config
from worldmodels.config_schema import Config
from worldmodels.controller import load_params
from worldmodels.run_layout import (
    CONFIG_NAME,
    CONTROLLER_DIR,
    MDNRNN_CHECKPOINT_NAME,
    MEAN_PARAMS_NAME,
    VAE_CHECKPOINT_NAME,
)

AGENT_FORMAT = 1
CACHE_ENV = "WORLDMODELS_CACHE"
"""Environment variable naming the cache folder (default: $XDG_CACHE_HOME/worldmodels, else ~/.cache/worldmodels)."""
MODEL_KINDS = ("vae", "mdnrnn")


class AgentFileError(ValueError):
    """An agent file is missing, unreadable or not an agent; the message names the file and what to do."""


def agent_path(name_or_path: str | Path) -> Path:
    """The agent file of a shipped agent's name, or ``name_or_path`` itself when it is a file path.

    :raises AgentFileError: neither a shipped name nor an existing file.
    """
    text = str(name_or_path)
    if SHIPPED_DIR.joinpath(text).is_dir() and "/" not in text:
        path = SHIPPED_DIR / text / AGENT_FILE_NAME
        if not path.is_file():
            raise AgentFileError(f"the shipped agent {text!r} has no {AGENT_FILE_NAME} ({path} is missing): the "
                                 "installation is incomplete; reinstall worldmodels")
        return path
    path = Path(text)
    if path.is_file():
        return path
    shipped = ", ".join(shipped_agents()) or "none in this installation"
    raise AgentFileError(f"no pretrained agent {text!r}: pass a shipped agent ({shipped}) or the path of an agent "
                         "file written by `worldmodels export-agent`")


def model_card_path(name_or_path: str | Path) -> Path | None:
    """The model card of a shipped agent's name (None for an agent file or a card-less agent)."""
    card = SHIPPED_DIR / str(name_or_path) / MODEL_CARD_NAME
    return card if "/" not in str(name_or_path) and card.is_file() else None


def export_agent(run_dir: str | Path, config: Config, out: str | Path, params_path: str | Path | None = None) -> Path:
    """Write the agent of ``run_dir`` (its V and M, the controller ``params_path``, default RUN/controller/mean.npy)
    with ``config`` (the run's, with any changes for the agent's users, e.g. ``dream.precision``) to the agent file
    ``out``, atomically, weights in float16. Returns ``out``.

    :raises FileNotFoundError: V, M or the controller is missing.
    :raises CheckpointError: V or M is not a readable checkpoint.
    :raises ValueError: a weight does not fit float16 (|w| > 65504).
    """
    run_dir, out = Path(run_dir), Path(out)
    params_path = Path(params_path) if params_path is not None else run_dir / CONTROLLER_DIR / MEAN_PARAMS_NAME
    config_text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    record: dict[str, Any] = {"format": AGENT_FORMAT, "config": config_text,
                              "controller": torch.from_numpy(load_params(params_path)),
                              "source": f"{run_dir.resolve()} with {params_path.resolve()}"}
    for kind, name in zip(MODEL_KINDS, (VAE_CHECKPOINT_NAME, MDNRNN_CHECKPOINT_NAME)):
        weights = ModelWeights.read(run_dir / name, kind)
        record[kind] = {"model_args": weights.model_args, "model": {key: _half(value, key, weights.source)
                                                                     for key, value in weights.model.items()}}
    save_record(out, record)
    return out


def _half(tensor: torch.Tensor, key: str, source: str) -> torch.Tensor:
    """A floating weight in float16 (others as they are); refused when it would overflow."""
    if not tensor.is_floating_point():
        return tensor
    if tensor.abs().max() > torch.finfo(torch.float16).max:
        raise ValueError(f"{source}: weight {key} exceeds float16's range; it cannot be exported in half precision")
    return tensor.to(torch.float16)


def read_agent(path: str | Path) -> dict[str, Any]:
    """The record of an agent file (see the module docstring), read with ``weights_only=True``.

    :raises AgentFileError: the file is missing, truncated, corrupt, or not an agent of this format.
    """
    path = Path(path)
    advice = "reinstall worldmodels (a shipped agent) or export it again (`worldmodels export-agent`)"
    if not path.is_file():
        raise AgentFileError(f"agent file {path} does not exist: {advice}")
    try:
        record = load_weights_only(path)
    except UnreadableFileError as err:
        raise AgentFileError(f"agent file {path} is {err}: it is truncated or corrupt; {advice}") from None
    expected = {"format": int, "config": str, "controller": torch.Tensor, "source": str, "vae": dict, "mdnrnn": dict}
    if not isinstance(record, dict) or record.get("format") != AGENT_FORMAT or any(
            not isinstance(record.get(key), kind) for key, kind in expected.items()):
        raise AgentFileError(f"{path} is not a worldmodels agent file of format {AGENT_FORMAT}; {advice}")
    for kind in MODEL_KINDS:
        if not isinstance(record[kind].get("model_args"), dict) or not isinstance(record[kind].get("model"), dict):
            raise AgentFileError(f"agent file {path}: its {kind} lacks model_args or model; {advice}")
    return record


def file_digest(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """Where agents are unpacked: $WORLDMODELS_CACHE, else $XDG_CACHE_HOME/worldmodels, else ~/.cache/worldmodels."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "worldmodels"


def unpack_agent(name_or_path: str | Path, root: str | Path | None = None) -> Path:
    """The run folder of an agent (a shipped name or an agent file), unpacked into ``root`` (default
    :func:`cache_root`) on first use: ``pretrained/<file stem or name>-<sha256[:12]>/`` with vae.pt and mdnrnn.pt
    (float32 step-0 checkpoints of the file's weights, no optimiser state), controller/mean.npy and config.yaml.
    A folder already unpacked from the same bytes is reused; the folder appears whole or not at all.

    :raises AgentFileError: see :func:`agent_path` and :func:`read_agent`, or weights that do not build the models.
    """
    path = agent_path(name_or_path)
    label = path.parent.name if path.name == AGENT_FILE_NAME else path.stem
    folder = Path(root or cache_root()) / "pretrained" / f"{label}-{file_digest(path)[:12]}"
    if (folder / CONFIG_NAME).is_file():
        return folder
    record = read_agent(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        _write_run_folder(record, path, staging)
        try:
            staging.rename(folder)
        except OSError:  # another process unpacked it first
            if not (folder / CONFIG_NAME).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _write_run_folder(record: dict[str, Any], path: Path, folder: Path) -> None:
    """Write the agent ``record`` read from ``path`` as a run folder into ``folder``, checking every part."""
    for kind, name in zip(MODEL_KINDS, (VAE_CHECKPOINT_NAME, MDNRNN_CHECKPOINT_NAME)):
        part = record[kind]
        state = {key: value.float() if value.is_floating_point() else value for key, value in part["model"].items()
                 if isinstance(value, torch.Tensor)}
        weights = ModelWeights(kind, part["model_args"], state, f"{path} ({kind})")
        model = weights.build()  # checks the arguments, every shape and that each weight is finite
        save_checkpoint(folder / name, Checkpoint(kind, weights.model_args, model.state_dict(), {}, {}, 0, 0, 0, {}))
    controller = record["controller"].numpy()
    if controller.ndim != 1 or not np.isfinite(controller).all():
        raise AgentFileError(f"agent file {path}: the controller must be one finite vector, got {controller.shape}")
    (folder / CONTROLLER_DIR).mkdir()
    np.save(folder / CONTROLLER_DIR / MEAN_PARAMS_NAME, controller.astype(np.float32))
    atomic_write_text(folder / CONFIG_NAME, record["config"])
    try:
        load_config(file=folder / CONFIG_NAME)
    except ConfigError as err:
        raise AgentFileError(f"agent file {path}: its config does not load in this version ({err})") from None
