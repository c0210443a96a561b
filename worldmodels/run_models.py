"""Whether a config still fits the models a run folder holds, read from the models' own files.

A checkpoint records its model's constructor arguments (``model_args``); each training stage takes those the config
decides from one function (``vae_config_args``, ``mdnrnn_config_args``, ...) giving them by setting (``vae.z_size``
is the argument ``z_size``: :func:`worldmodels.checkpoint.model_args_of`), and the data decides the rest (channels,
action size, vocabularies). A config that would build a model the folder holds with other arguments is refused: its
weights would not fit (or would go on training as another model). CMA-ES's controller has no
checkpoint; its ``mean.npy`` is measured against the controller the config would build on the folder's M.

The data's part is checked where the stage reads the data and loads the checkpoint
(:func:`worldmodels.checkpoint.load_model_state` names both shapes).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worldmodels.config_schema import Config
from worldmodels.run_layout import (
    CHAR_LSTM_CHECKPOINT_NAME,
    CNN_CHECKPOINT_NAME,
    CONTROLLER_DIR,
    CYCLEGAN_CHECKPOINT_NAME,
    GAN_CHECKPOINT_NAME,
    MDNRNN_CHECKPOINT_NAME,
    MEAN_PARAMS_NAME,
    MUSEGAN_CHECKPOINT_NAME,
    MUSIC_LSTM_CHECKPOINT_NAME,
    VAE_CHECKPOINT_NAME,
)


@dataclass(frozen=True)
class HeldModel:
    """A model a run folder may hold: its file, its checkpoint kind, and the stage's function giving the constructor
    arguments a config decides by setting, as ``"module:function"`` (imported only when the folder holds the file)."""

    file: str
    kind: str
    config_args: str

    def config_args_of(self, config: Config) -> dict[str, Any]:
        """The constructor arguments ``config`` gives this model, keyed by setting (``"vae.z_size"``)."""
        module, name = self.config_args.split(":")
        function: Callable[[Config], dict[str, Any]] = getattr(importlib.import_module(module), name)
        return function(config)


HELD_MODELS = (
    HeldModel(VAE_CHECKPOINT_NAME, "vae", "worldmodels.train_vae:vae_config_args"),
    HeldModel(MDNRNN_CHECKPOINT_NAME, "mdnrnn", "worldmodels.train_mdnrnn:mdnrnn_config_args"),
    HeldModel(CNN_CHECKPOINT_NAME, "cnn", "worldmodels.components.train_cnn:cnn_config_args"),
    HeldModel(GAN_CHECKPOINT_NAME, "gan", "worldmodels.components.train_gan:gan_config_args"),
    HeldModel(CYCLEGAN_CHECKPOINT_NAME, "cyclegan", "worldmodels.components.train_cyclegan:cyclegan_config_args"),
    HeldModel(CHAR_LSTM_CHECKPOINT_NAME, "char_lstm", "worldmodels.components.train_text:char_lstm_config_args"),
    HeldModel(MUSIC_LSTM_CHECKPOINT_NAME, "music_lstm", "worldmodels.music.train:music_lstm_config_args"),
    HeldModel(MUSEGAN_CHECKPOINT_NAME, "musegan", "worldmodels.music.train:musegan_config_args"),
)
"""Every checkpoint a stage writes into a run folder."""


def changed_model_args(config: Config, run: Path) -> dict[str, list[str]]:
    """What ``config`` would change in the models ``run`` holds: for each file (name relative to ``run``) whose model
    it would build otherwise, ``"section.name=recorded (now new)"`` per setting that differs from the constructor
    argument the file records. Files that are unreadable are left to the stage that loads them."""
    from worldmodels.checkpoint import CheckpointError, model_args_of, read_model_args

    changes: dict[str, list[str]] = {}
    for held in HELD_MODELS:
        path = run / held.file
        if not path.is_file():
            continue
        try:
            recorded = read_model_args(path, held.kind)
        except CheckpointError:
            continue
        settings = held.config_args_of(config)
        changed = [f"{key}={recorded.get(name)!r} (now {value!r})"
                   for key, name, value in zip(settings, model_args_of(settings), settings.values())
                   if recorded.get(name) != value]
        if changed:
            changes[held.file] = changed
    controller = _changed_controller(config, run)
    if controller:
        changes[f"{CONTROLLER_DIR}/{MEAN_PARAMS_NAME}"] = [controller]
    return changes


def _changed_controller(config: Config, run: Path) -> str | None:
    """How the controller ``config`` builds on ``run``'s M differs from ``run/controller/mean.npy`` (None: it does
    not, or the folder holds no M or no readable mean.npy to compare)."""
    import numpy as np

    from worldmodels.checkpoint import CheckpointError, read_model_args
    from worldmodels.controller import Controller

    params, mdnrnn = run / CONTROLLER_DIR / MEAN_PARAMS_NAME, run / MDNRNN_CHECKPOINT_NAME
    if not (params.is_file() and mdnrnn.is_file()):
        return None
    try:
        recorded = np.load(params, mmap_mode="r", allow_pickle=False).shape
        action_size = read_model_args(mdnrnn, "mdnrnn")["action_size"]
    except (OSError, ValueError, CheckpointError, KeyError):
        return None
    cfg = config.controller
    size = Controller(config.vae.z_size, config.mdnrnn.hidden_size, action_size, cfg.inputs, cfg.bias,
                      cfg.hidden_units).num_params
    if recorded == (size,):
        return None
    return (f"{recorded[0] if len(recorded) == 1 else recorded} parameters (now {size}, from controller.inputs, "
            "bias and hidden_units and V's and M's sizes)")
