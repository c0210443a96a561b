"""The ``worldmodels`` command: one subcommand per pipeline stage, all configured the same way.

Every stage takes ``--preset NAME`` (or ``--config FILE``) and any number of ``--set section.key=value``
overrides; ``worldmodels config`` prints the merged result. A stage given a ``--run`` folder that holds a
saved ``config.yaml`` uses it when neither ``--preset`` nor ``--config`` is given.

Commands of packages above ``worldmodels`` (``agents``: CMA-ES, evaluation) join the parser through the
``worldmodels.commands`` entry-point group: each entry point is a function ``add_commands(subparsers)``
(see :func:`add_command`), so this module never imports them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import yaml

from rollouts.atomic import atomic_write_text
from worldmodels.config import (
    Config,
    ConfigError,
    available_presets,
    config_to_dict,
    load_config,
    save_config,
)

DEFAULT_PRESET = "carracing"
RUN_CONFIG_NAME = "config.yaml"
RUN_FOLDER_HELP = "folder for this run's config, checkpoints and logs"
MODELS_RUN_HELP = "run folder holding vae.pt and mdnrnn.pt"
COMMAND_GROUP = "worldmodels.commands"
"""Entry-point group of functions ``add_commands(subparsers)`` adding commands from other packages."""


def config_from_args(args: argparse.Namespace) -> Config:
    """The config named by --config, else --preset, else RUN/config.yaml (with --run), else the default preset,
    with the --set overrides applied."""
    saved = Path(args.run) / RUN_CONFIG_NAME if getattr(args, "run", None) else None
    if args.config is None and args.preset is None and saved is not None and saved.is_file():
        return load_config(overrides=args.set, file=saved)
    return load_config(preset=args.preset or DEFAULT_PRESET, overrides=args.set, file=args.config)


def cmd_config(args: argparse.Namespace) -> None:
    """Print the merged configuration as YAML."""
    print(yaml.safe_dump(config_to_dict(config_from_args(args)), sort_keys=False), end="")


def cmd_presets(args: argparse.Namespace) -> None:
    """List the shipped presets."""
    print("\n".join(available_presets()))


def cmd_collect(args: argparse.Namespace) -> None:
    """Gather episodes with Ray workers into --out (resumes: stored episodes are skipped)."""
    from rollouts.ray_cluster import init_ray
    from worldmodels.stages import collect_stage

    config = config_from_args(args)
    init_ray(args.ray_address or config.ray.address, config.ray.num_cpus)
    report = collect_stage(config, Path(args.out))
    print(f"collect: {report.describe()} -> {args.out}")


VAE_SHAPE_SETTINGS = ("vae.z_size", "vae.encoder")
"""Settings that shape V's tensors."""
MDNRNN_SHAPE_SETTINGS = ("vae.z_size", "mdnrnn.hidden_size", "mdnrnn.num_mixtures", "mdnrnn.reward_head",
                         "mdnrnn.done_head")
"""Settings that shape M's tensors."""
CNN_SHAPE_SETTINGS = ("cnn.encoder", "cnn.features_dim", "cnn.task", "cnn.input")
"""Settings that shape the train-cnn model's tensors."""
GAN_SHAPE_SETTINGS = ("gan.variant", "gan.latent_size", "gan.width")
"""Settings that shape the GAN's tensors."""
CYCLEGAN_SHAPE_SETTINGS = ("cyclegan.generator", "cyclegan.width", "cyclegan.resnet_blocks")
"""Settings that shape the CycleGAN's tensors."""
CONTROLLER_SHAPE_SETTINGS = ("controller.inputs", "controller.bias", "controller.hidden_units")
"""Settings that shape C's parameter vector."""
TEXT_SHAPE_SETTINGS = ("text.hidden_size", "text.lowercase")
"""Settings that shape the character LSTM's tensors (with the text's vocabulary)."""
MUSIC_LSTM_SHAPE_SETTINGS = ("music_lstm.embedding_size", "music_lstm.hidden_size", "music_lstm.layers",
                             "music.folder", "music.limit", "music.tokens")
"""Settings that shape the music LSTM's tensors (the music read decides its vocabularies)."""
MUSEGAN_SHAPE_SETTINGS = ("musegan.bars", "musegan.pitches", "musegan.latent_size", "musegan.width")
"""Settings that shape MuseGAN's tensors."""


def _setting(config: Config, key: str) -> object:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def checked_config(args: argparse.Namespace) -> Config:
    """The merged config for a command reading or writing --run (see :func:`config_from_args`); nothing is written.

    Refused when it changes a setting that shapes a model the run folder already holds.
    """
    from worldmodels.components.train_cnn import CHECKPOINT_NAME as CNN_CHECKPOINT
    from worldmodels.components.train_cyclegan import CHECKPOINT_NAME as CYCLEGAN_CHECKPOINT
    from worldmodels.components.train_gan import CHECKPOINT_NAME as GAN_CHECKPOINT
    from worldmodels.components.train_text import CHECKPOINT_NAME as TEXT_CHECKPOINT
    from worldmodels.controller import CONTROLLER_DIR, MEAN_PARAMS_NAME
    from worldmodels.music.train import LSTM_CHECKPOINT_NAME, MUSEGAN_CHECKPOINT_NAME
    from worldmodels.train_mdnrnn import CHECKPOINT_NAME as MDNRNN_CHECKPOINT
    from worldmodels.train_vae import CHECKPOINT_NAME as VAE_CHECKPOINT

    config = config_from_args(args)
    run = Path(args.run)
    saved = run / RUN_CONFIG_NAME
    if saved.exists():
        earlier = load_config(file=saved)
        for checkpoint, keys in ((VAE_CHECKPOINT, VAE_SHAPE_SETTINGS), (MDNRNN_CHECKPOINT, MDNRNN_SHAPE_SETTINGS),
                                 (f"{CONTROLLER_DIR}/{MEAN_PARAMS_NAME}", CONTROLLER_SHAPE_SETTINGS),
                                 (CNN_CHECKPOINT, CNN_SHAPE_SETTINGS), (GAN_CHECKPOINT, GAN_SHAPE_SETTINGS),
                                 (TEXT_CHECKPOINT, TEXT_SHAPE_SETTINGS),
                                 (CYCLEGAN_CHECKPOINT, CYCLEGAN_SHAPE_SETTINGS),
                                 (LSTM_CHECKPOINT_NAME, MUSIC_LSTM_SHAPE_SETTINGS),
                                 (MUSEGAN_CHECKPOINT_NAME, MUSEGAN_SHAPE_SETTINGS)):
            changed = [f"{key}={_setting(earlier, key)!r} (now {_setting(config, key)!r})"
                       for key in keys if _setting(earlier, key) != _setting(config, key)]
            if changed and (run / checkpoint).exists():
                raise ConfigError(
                    f"run folder {run} holds {checkpoint}, built with {', '.join(changed)}: it would not fit. "
                    f"Pass --config {saved} (plus --set for other settings), or use a new --run folder")
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
    from worldmodels.controller import CONTROLLER_DIR

    folders = (run, run / CONTROLLER_DIR)
    return {file: file.stat().st_mtime_ns for folder in folders if folder.is_dir() for file in folder.iterdir()
            if file.is_file() and file.name != RUN_CONFIG_NAME}


def run_config(args: argparse.Namespace) -> Config:
    """The merged config for a stage writing into --run (:func:`checked_config`), saved there as config.yaml.

    Should the command then fail on its input (the one-line errors of :func:`main`) before writing anything else
    into the run folder, :func:`undo_config_write` puts config.yaml back as it was.
    """
    config = checked_config(args)
    run = Path(args.run)
    saved = run / RUN_CONFIG_NAME
    args.config_write = ConfigWrite(saved, saved.read_text() if saved.is_file() else None, not run.exists(),
                                    _run_outputs(run))
    save_config(config, saved)
    return config


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


def cmd_train_vae(args: argparse.Namespace) -> None:
    """Train V on the episodes in --data; checkpoints, log and reconstructions go to --run (resumes RUN/vae.pt)."""
    from worldmodels.train_vae import train_vae

    summary = train_vae(run_config(args), args.data, args.run)
    print(f"train-vae: {summary.describe()}")


def cmd_encode(args: argparse.Namespace) -> None:
    """Store V's posterior (mu, logvar) for every episode in --data, using RUN/vae.pt."""
    from worldmodels.encode import encode_episodes
    from worldmodels.train_vae import CHECKPOINT_NAME

    config = run_config(args)
    count = encode_episodes(Path(args.run) / CHECKPOINT_NAME, args.data, batch_size=args.batch_size,
                            device=config.device, overwrite=args.overwrite)
    print(f"encode: {count} episodes encoded in {args.data} (the others were up to date)")


def cmd_train_mdnrnn(args: argparse.Namespace) -> None:
    """Train M on the latents in --data; checkpoints and log go to --run (resumes RUN/mdnrnn.pt)."""
    from worldmodels.train_mdnrnn import train_mdnrnn

    summary = train_mdnrnn(run_config(args), args.data, args.run)
    print(f"train-mdnrnn: {summary.describe()}")


def cmd_train_cnn(args: argparse.Namespace) -> None:
    """Train the CNN encoder cnn.encoder on cnn.task (the action, or the reward's sign) from the episodes in --data,
    scored on held-out episodes; checkpoint and logs go to --run (resumes RUN/cnn.pt)."""
    from worldmodels.components.train_cnn import train_cnn

    report = train_cnn(run_config(args), args.data, args.run)
    print(f"train-cnn: {report.describe()}")


def cmd_train_gan(args: argparse.Namespace) -> None:
    """Train the GAN gan.variant (dcgan, wgan, wgan_gp) on the frames in --data; checkpoint, log and sample grids
    go to --run (resumes RUN/gan.pt)."""
    from worldmodels.components.train_gan import train_gan

    summary = train_gan(run_config(args), args.data, args.run, vae_path=args.vae)
    print(f"train-gan: {summary.describe()}")


def cmd_train_text(args: argparse.Namespace) -> None:
    """Train Chollet's character LSTM on the text file --text; checkpoint, loss log and sample lines go to --run
    (resumes RUN/char_lstm.pt)."""
    from worldmodels.components.train_text import train_text

    summary = train_text(run_config(args), args.text, args.run)
    print(f"train-text: {summary.describe()}")


def cmd_generate_text(args: argparse.Namespace) -> None:
    """Print text generated by the character LSTM of --run (RUN/char_lstm.pt), once per --temperature."""
    import torch

    from worldmodels.checkpoint import load_char_lstm
    from worldmodels.components.char_lstm import check_temperature
    from worldmodels.components.train_text import CHECKPOINT_NAME

    temperatures = [check_temperature(t) for t in args.temperature]
    model = load_char_lstm(Path(args.run) / CHECKPOINT_NAME)
    seed_text = model.seed_text if args.seed_text is None else args.seed_text
    for temperature in temperatures:
        text = model.generate(seed_text, args.length, temperature, torch.Generator().manual_seed(args.seed))
        print(f"--- temperature {temperature:g} ---\n{seed_text}{text}")


def cmd_train_cyclegan(args: argparse.Namespace) -> None:
    """Train a CycleGAN (cyclegan.generator: unet or resnet) between the frames in --data-a and --data-b; checkpoint,
    log and translation grids go to --run (resumes RUN/cyclegan.pt). Use it with env.translator=RUN/cyclegan.pt."""
    from worldmodels.components.train_cyclegan import train_cyclegan

    summary = train_cyclegan(run_config(args), args.data_a, args.data_b, args.run)
    print(f"train-cyclegan: {summary.describe()}")


def cmd_dream(args: argparse.Namespace) -> None:
    """Write a GIF of a dreamed episode (V's decoding of M's dream) beside the real one, same controller and start."""
    from worldmodels.controller import CONTROLLER_DIR, MEAN_PARAMS_NAME, load_params
    from worldmodels.device import resolve_device
    from worldmodels.dream import settings_from_config
    from worldmodels.dream_video import dream_beside_real
    from worldmodels.pictures import write_gif
    from worldmodels.real_rollouts import RealEnvWorkerSpec

    if args.temperature is not None:
        args.set.append(f"dream.temperature={args.temperature}")
    config = config_from_args(args)
    spec = RealEnvWorkerSpec.for_run(config, Path(args.run), num_envs=1)
    params_path = args.params or Path(args.run) / CONTROLLER_DIR / MEAN_PARAMS_NAME
    params = load_params(params_path) if args.params is not None or params_path.is_file() else None
    seed = config.evaluate.seed if args.seed is None else args.seed
    device = resolve_device(config.device)
    renderer = None
    if args.renderer == "gan":
        from worldmodels.checkpoint import load_mdnrnn
        from worldmodels.components.train_gan import CHECKPOINT_NAME as GAN_CHECKPOINT
        from worldmodels.components.train_gan import load_dream_renderer

        z_size = load_mdnrnn(spec.mdnrnn_path).z_size
        renderer = load_dream_renderer(args.gan or Path(args.run) / GAN_CHECKPOINT, z_size, device,
                                       vae_path=spec.vae_path)
    video = dream_beside_real(spec, settings_from_config(config), params, seed, device, renderer)
    write_gif(args.gif, video.frames)
    print(f"dream: controller {params_path if params is not None else 'all zeros (no controller yet)'}; real "
          f"episode {video.real_steps} steps, return {video.real_return:.1f}; dream at tau {config.dream.temperature}: "
          f"{video.describe_dream()} -> {args.gif}")


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
                configured: bool = True, run_help: str | None = None) -> argparse.ArgumentParser:
    """Add command ``name`` running ``func(args)`` (help from its docstring), with the config options, and a
    required --run described by ``run_help`` when given."""
    parser = subparsers.add_parser(name, help=func.__doc__, description=func.__doc__)
    parser.set_defaults(func=func)
    if configured:
        add_config_options(parser, with_run=run_help is not None)
    if run_help is not None:
        parser.add_argument("--run", required=True, type=Path, help=run_help)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worldmodels", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    add_command(sub, "config", cmd_config)
    add_command(sub, "presets", cmd_presets, configured=False)
    collect = add_command(sub, "collect", cmd_collect)
    collect.add_argument("--out", required=True, type=Path, help="folder for the episode files")
    add_ray_address_option(collect)
    for name, func in (("train-vae", cmd_train_vae), ("encode", cmd_encode), ("train-mdnrnn", cmd_train_mdnrnn),
                       ("train-cnn", cmd_train_cnn), ("train-gan", cmd_train_gan)):
        stage = add_command(sub, name, func, run_help=RUN_FOLDER_HELP)
        stage.add_argument("--data", required=True, type=Path, help="folder of episode files")
        if name == "train-gan":
            stage.add_argument("--vae", type=Path, help="V whose latents the generator reads with "
                               "gan.latent_source=vae (default: RUN/vae.pt)")
        if name == "encode":
            stage.add_argument("--batch-size", type=positive_int, default=256, help="frames per encoder pass")
            stage.add_argument("--overwrite", action="store_true",
                               help="encode every episode, even those with up-to-date latents")
    train_text = add_command(sub, "train-text", cmd_train_text, run_help=RUN_FOLDER_HELP)
    train_text.add_argument("--text", required=True, type=Path, help="a UTF-8 text file to learn from")
    generate_text = add_command(sub, "generate-text", cmd_generate_text, configured=False,
                                run_help="run folder holding char_lstm.pt")
    generate_text.add_argument("--temperature", type=float, nargs="+", default=[0.2, 0.5, 1.0, 1.2],
                               help="sampling temperatures > 0, one text each (default: Chollet's 0.2 0.5 1.0 1.2)")
    generate_text.add_argument("--length", type=positive_int, default=400, help="characters to generate (default 400)")
    generate_text.add_argument("--seed-text", help="text to continue (default: the training text's first window)")
    generate_text.add_argument("--seed", type=int, default=0, help="seed of the sampling generator")
    cyclegan = add_command(sub, "train-cyclegan", cmd_train_cyclegan, run_help=RUN_FOLDER_HELP)
    cyclegan.add_argument("--data-a", required=True, type=Path, help="folder of episode files of domain A "
                          "(e.g. normal colours)")
    cyclegan.add_argument("--data-b", required=True, type=Path, help="folder of episode files of domain B "
                          "(e.g. domain_randomize=True)")
    dream = add_command(sub, "dream", cmd_dream, run_help=MODELS_RUN_HELP)
    dream.add_argument("--gif", required=True, type=Path, help="the GIF to write: real episode left, dream right")
    dream.add_argument("--params", type=Path, help="controller .npy (default: RUN/controller/mean.npy, else zeros)")
    dream.add_argument("--seed", type=int, help="episode seed (default: evaluate.seed)")
    dream.add_argument("--temperature", type=float, help="dream temperature tau (sets dream.temperature)")
    dream.add_argument("--renderer", choices=["vae", "gan"], default="vae",
                       help="what draws the dream's z: V's decoder, or a GAN generator trained on V's latents "
                            "(train-gan --set gan.latent_source=vae)")
    dream.add_argument("--gan", type=Path, help="the GAN checkpoint of --renderer gan (default: RUN/gan.pt)")
    from worldmodels.music.cli import add_music_command  # here: worldmodels.music.cli imports this module

    add_music_command(sub)
    for entry_point in entry_points(group=COMMAND_GROUP):
        entry_point.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        undo_config_write(args)
        print(f"worldmodels {args.command}: error: {error_text(err, args.verbose)}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from rollouts.actor_pool import TaskFailedError  # here: only commands that ran Ray workers can raise it
        from rollouts.collect import CollectError

        if not isinstance(err, (TaskFailedError, CollectError)):
            raise
        print(f"worldmodels {args.command}: error: {error_text(err, args.verbose)}", file=sys.stderr)
        return 1
    return 0


def error_text(err: BaseException, verbose: bool = False) -> str:
    """What the user reads of an error: its message, on one line unless ``verbose``. An error raised again from
    another process (a Ray worker, a DataLoader worker) carries that process's traceback: its first line and the
    error the traceback ends with are kept."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if verbose or len(lines) <= 1:
        return str(err) or type(err).__name__
    return f"{lines[0]} ... {lines[-1]}"


if __name__ == "__main__":
    sys.exit(main())
