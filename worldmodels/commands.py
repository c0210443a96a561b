"""How a ``worldmodels`` command is built: its options, its configuration, its run folder's config.yaml, its errors.

Every configured command takes ``--preset NAME`` (or ``--config FILE``) and any number of ``--set section.key=value``
overrides. A command given a ``--run`` folder that holds a saved ``config.yaml`` uses it when neither ``--preset`` nor
``--config`` is given; a stage writing into the folder saves its merged config there (:func:`run_config`), refused when
it would change the shape of a model the folder holds or when another command is training into the folder, and put
back when the command fails on its input.

``worldmodels.cli`` (the stages), ``worldmodels.music.cli`` and ``agents.cli`` build their commands from these pieces.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rollouts.atomic import atomic_write_text
from worldmodels.agent_layout import shipped_agents
from worldmodels.config import ConfigError, available_presets, load_config, save_config
from worldmodels.config_schema import Config
from worldmodels.run_layout import CONFIG_NAME, CONTROLLER_DIR, MDNRNN_CHECKPOINT_NAME, VAE_CHECKPOINT_NAME
from worldmodels.run_lock import RunFolderLock, lock_run_folder
from worldmodels.run_models import changed_model_args

DEFAULT_PRESET = "carracing"
RUN_FOLDER_HELP = "folder for this run's config, checkpoints and logs"
MODELS_RUN_HELP = f"run folder holding {VAE_CHECKPOINT_NAME} and {MDNRNN_CHECKPOINT_NAME}"
COMMAND_GROUP = "worldmodels.commands"
"""Entry-point group of functions ``add_commands(subparsers)`` adding commands from other packages."""


def config_from_args(args: argparse.Namespace) -> Config:
    """The config named by --config, else --preset, else RUN/config.yaml (with --run), else the default preset,
    with the --set overrides applied."""
    saved = Path(args.run) / CONFIG_NAME if getattr(args, "run", None) else None
    if args.config is None and args.preset is None and saved is not None and saved.is_file():
        return load_config(overrides=args.set, file=saved)
    return load_config(preset=args.preset or DEFAULT_PRESET, overrides=args.set, file=args.config)


def checked_config(args: argparse.Namespace) -> Config:
    """The merged config for a command reading or writing --run (see :func:`config_from_args`); nothing is written.

    Refused when it would build a model the run folder already holds with other constructor arguments than the
    model's file records (:func:`worldmodels.run_models.changed_model_args`).
    """
    config = config_from_args(args)
    run = Path(args.run)
    changes = changed_model_args(config, run)
    if changes:
        saved = run / CONFIG_NAME
        advice = (f"Pass --config {saved} (plus --set for other settings)" if saved.is_file()
                  else "Set those settings as the models were built")
        held = "; ".join(f"{name}, built with {', '.join(changed)}" for name, changed in changes.items())
        raise ConfigError(f"run folder {run} holds {held}: it would not fit. {advice}, or use a new --run folder")
    return config


@dataclass
class ConfigWrite:
    """RUN/config.yaml as a command found it, to put back should the command fail on its input."""

    path: Path
    previous: str | None
    """The file's text before the command wrote it (None: there was none)."""
    created_run: bool
    """The command created the run folder itself."""
    outputs: dict[Path, int]
    """mtime (ns) of the run folder's other files before the command (:func:`_run_outputs`)."""


def _run_outputs(run: Path) -> dict[Path, int]:
    """mtime (ns) of every file at the top of ``run`` and in ``run/controller``, config.yaml excluded: where the
    stages write their models and logs."""
    folders = (run, run / CONTROLLER_DIR)
    return {file: file.stat().st_mtime_ns for folder in folders if folder.is_dir() for file in folder.iterdir()
            if file.is_file() and file.name != CONFIG_NAME}


def run_config(args: argparse.Namespace) -> Config:
    """The merged config for a stage writing into --run (:func:`checked_config`), saved there as config.yaml once
    the command holds the folder's lock (:func:`lock_run`).

    Should the command then fail on its input (the one-line errors of :func:`main`) before writing anything else
    into the run folder, :func:`undo_config_write` puts config.yaml back as it was.
    """
    config = checked_config(args)
    run = Path(args.run)
    saved = run / CONFIG_NAME
    created_run, outputs = not run.exists(), _run_outputs(run)
    lock_run(args)
    args.config_write = ConfigWrite(saved, saved.read_text() if saved.is_file() else None, created_run, outputs)
    save_config(config, saved)
    return config


def lock_run(args: argparse.Namespace, folder: Path | None = None) -> None:
    """Take the lock of the --run folder, or of ``folder`` (``worldmodels.run_lock``), for the rest of the command: a
    second command writing into it is refused in one line. ``worldmodels.cli.main`` releases it when the command
    ends (:func:`release_run`)."""
    args.run_lock = lock_run_folder(Path(args.run) if folder is None else folder)


def release_run(args: argparse.Namespace) -> None:
    """Drop the lock :func:`lock_run` took, if it took one."""
    lock: RunFolderLock | None = getattr(args, "run_lock", None)
    if lock is not None:
        lock.release()


def undo_config_write(args: argparse.Namespace) -> None:
    """Put back the config.yaml :func:`run_config` replaced (remove it, and the run folder it created, when there
    was none), unless the command has written other files into the run folder since: they follow the new one."""
    write: ConfigWrite | None = getattr(args, "config_write", None)
    if write is None or _run_outputs(write.path.parent) != write.outputs:
        return
    if write.previous is not None:
        atomic_write_text(write.path, write.previous)
        return
    write.path.unlink(missing_ok=True)
    if write.created_run and not any(write.path.parent.iterdir()):
        write.path.parent.rmdir()


def add_config_options(parser: argparse.ArgumentParser, with_run: bool = False) -> None:
    """--preset, --config and --set, the options every configured command takes (``with_run``: the command has
    --run, whose saved config.yaml is the default)."""
    default = f"RUN/config.yaml when --run holds one, else {DEFAULT_PRESET}" if with_run else DEFAULT_PRESET
    parser.add_argument("--preset", help=f"one of: {', '.join(available_presets())} (default: {default})")
    parser.add_argument("--config", type=Path, help="a saved config YAML (replaces --preset)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set vae.z_size=16 (repeatable)")


def add_ray_address_option(parser: argparse.ArgumentParser) -> None:
    """--ray-address, for commands that run Ray workers."""
    parser.add_argument("--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else start a local one)")


def start_ray(args: argparse.Namespace, config: Config) -> None:
    """Join the Ray cluster of --ray-address, ``ray.address`` or $RAY_ADDRESS (shipping this project's code to it
    unless ``ray.ship_code`` is false), else start a local Ray of ``ray.num_cpus`` CPUs."""
    from rollouts.ray_cluster import init_ray

    init_ray(args.ray_address or config.ray.address, config.ray.num_cpus, config.ray.ship_code)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def add_command(subparsers: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], None],
                configured: bool = True, run_help: str | None = None, pretrained: bool = False
                ) -> argparse.ArgumentParser:
    """Add command ``name`` running ``func(args)`` (help from its docstring), with the config options, and a
    required --run described by ``run_help`` when given; with ``pretrained``, --pretrained NAME may replace --run
    (:func:`resolve_pretrained` turns it into the agent's unpacked run folder)."""
    parser = subparsers.add_parser(name, help=func.__doc__, description=func.__doc__)
    parser.set_defaults(func=func)
    if configured:
        add_config_options(parser, with_run=run_help is not None)
    if run_help is not None and pretrained:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--run", type=Path, help=run_help)
        group.add_argument("--pretrained", metavar="NAME", help=f"a shipped agent ({', '.join(shipped_agents())}) or "
                           "an agent file written by `worldmodels export-agent`, in place of --run (unpacked once "
                           "into $WORLDMODELS_CACHE, default ~/.cache/worldmodels)")
    elif run_help is not None:
        parser.add_argument("--run", required=True, type=Path, help=run_help)
    return parser


def resolve_pretrained(args: argparse.Namespace) -> None:
    """Point --run at the unpacked run folder of --pretrained, when the command was given one."""
    if getattr(args, "pretrained", None):
        from worldmodels.pretrained import unpack_agent

        args.run = unpack_agent(args.pretrained)


def error_text(err: BaseException, verbose: bool = False) -> str:
    """What the user reads of an error: its message, on one line unless ``verbose``. An error raised again from
    another process (a Ray worker, a DataLoader worker) carries that process's traceback: its first line and the
    error the traceback ends with are kept."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if verbose or len(lines) <= 1:
        return str(err) or type(err).__name__
    return f"{lines[0]} ... {lines[-1]}"
