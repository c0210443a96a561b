"""The ``worldmodels`` command: one subcommand per pipeline stage, all configured the same way.

Every stage takes ``--preset NAME`` (or ``--config FILE``) and any number of ``--set section.key=value``
overrides; ``worldmodels config`` prints the merged result. A stage given a ``--run`` folder that holds a
saved ``config.yaml`` uses it when neither ``--preset`` nor ``--config`` is given.

Commands of packages above ``worldmodels`` (``agents``: CMA-ES, evaluation) join the parser through the
``worldmodels.commands`` entry-point group: each entry point is a function ``add_commands(subparsers)``
(see :func:`worldmodels.commands.add_command`), so this module never imports them. Every command is built from
:mod:`worldmodels.commands`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from worldmodels.commands import (
    COMMAND_GROUP,
    MODELS_RUN_HELP,
    RUN_FOLDER_HELP,
    add_command,
    add_ray_address_option,
    checked_config,
    config_from_args,
    error_text,
    lock_run,
    positive_int,
    release_run,
    resolve_pretrained,
    run_config,
    start_ray,
    undo_config_write,
)
from worldmodels.config import ConfigError, available_presets, config_to_dict
from worldmodels.config_help import config_reference
from worldmodels.music.cli import add_music_command
from worldmodels.run_layout import (
    CHAR_LSTM_CHECKPOINT_NAME,
    CONFIG_NAME,
    CONTROLLER_DIR,
    GAN_CHECKPOINT_NAME,
    MEAN_PARAMS_NAME,
    VAE_CHECKPOINT_NAME,
)
from worldmodels.run_lock import RunFolderInUseError

if TYPE_CHECKING:
    from rollouts.collect import DataPolicySpec
    from worldmodels.config_schema import Config


def cmd_config(args: argparse.Namespace) -> None:
    """Print the merged configuration as YAML."""
    print(yaml.safe_dump(config_to_dict(config_from_args(args)), sort_keys=False), end="")


def cmd_presets(args: argparse.Namespace) -> None:
    """List the shipped presets."""
    print("\n".join(available_presets()))


def cmd_collect(args: argparse.Namespace) -> None:
    """Gather episodes with Ray workers into --out (resumes: stored episodes are skipped)."""
    from worldmodels.seeds import check_collect_seeds
    from worldmodels.stages import collect_stage

    config = config_from_args(args)
    lock_run(args, Path(args.out))
    check_collect_seeds(config, 0, config.collect.episodes)  # also in collect_stage; here so a refusal starts no Ray
    policy = collect_policy(args, config)
    start_ray(args, config)
    report = collect_stage(config, Path(args.out), policy)
    print(f"collect: {report.describe()} -> {args.out}")


def collect_policy(args: argparse.Namespace, config: Config) -> DataPolicySpec | None:
    """The trained controller named by --policy-run or --policy-pretrained (None: ``collect.policy``), with
    ``iterate.action_noise`` added to its actions."""
    if not (args.policy_run or args.policy_pretrained):
        return None
    from worldmodels.config import load_config
    from worldmodels.controller_policy import run_policy
    from worldmodels.pretrained import unpack_agent

    source = unpack_agent(args.policy_pretrained) if args.policy_pretrained else Path(args.policy_run)
    saved = source / CONFIG_NAME
    if not saved.is_file():
        raise FileNotFoundError(f"--policy-run {source} has no {CONFIG_NAME}: give a run folder whose controller "
                                "was trained (it holds config.yaml, vae.pt, mdnrnn.pt and controller/mean.npy)")
    return run_policy(source, load_config(file=saved).controller, config.iterate.action_noise,
                      name=f"mean controller of {args.policy_pretrained or source}")


def cmd_train_vae(args: argparse.Namespace) -> None:
    """Train V on the episodes in --data; checkpoints, log and reconstructions go to --run (resumes RUN/vae.pt)."""
    from worldmodels.train_vae import train_vae

    summary = train_vae(run_config(args), args.data, args.run)
    print(f"train-vae: {summary.describe()}")


def cmd_encode(args: argparse.Namespace) -> None:
    """Store V's posterior (mu, logvar) for every episode in --data, using RUN/vae.pt."""
    from worldmodels.encode import encode_episodes

    config = run_config(args)
    count = encode_episodes(Path(args.run) / VAE_CHECKPOINT_NAME, args.data, batch_size=args.batch_size,
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

    temperatures = [check_temperature(t) for t in args.temperature]
    model = load_char_lstm(Path(args.run) / CHAR_LSTM_CHECKPOINT_NAME)
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
    from worldmodels.controller import load_params
    from worldmodels.device import resolve_device
    from worldmodels.dream import settings_from_config
    from worldmodels.dream_video import dream_beside_real, load_dream_renderer
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

        z_size = load_mdnrnn(spec.mdnrnn).z_size
        renderer = load_dream_renderer(args.gan or Path(args.run) / GAN_CHECKPOINT_NAME, z_size, device,
                                       vae_path=Path(spec.vae.source))
    video = dream_beside_real(spec, settings_from_config(config), params, seed, device, renderer)
    write_gif(args.gif, video.frames)
    print(f"dream: controller {params_path if params is not None else 'all zeros (no controller yet)'}; real "
          f"episode {video.real_steps} steps, return {video.real_return:.1f}; dream at tau {config.dream.temperature}: "
          f"{video.describe_dream()} -> {args.gif}")


def cmd_export_agent(args: argparse.Namespace) -> None:
    """Write a run's V, M, config (with any --set changes) and controller as one agent file in half precision (what
    ships as a pretrained agent); any command taking --pretrained reads it."""
    from worldmodels.pretrained import export_agent

    out = export_agent(args.run, checked_config(args), args.out, args.params)
    print(f"export-agent: {args.run} -> {out} ({out.stat().st_size / 2**20:.1f} MiB)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worldmodels", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    config = add_command(sub, "config", cmd_config)
    config.formatter_class = argparse.RawDescriptionHelpFormatter
    config.epilog = config_reference(shutil.get_terminal_size().columns - 2)  # argparse's width
    add_command(sub, "presets", cmd_presets, configured=False)
    collect = add_command(sub, "collect", cmd_collect)
    collect.add_argument("--out", required=True, type=Path, help="folder for the episode files")
    policy = collect.add_mutually_exclusive_group()
    policy.add_argument("--policy-run", type=Path, help="gather with this run's mean controller and its V and M "
                        "instead of collect.policy (iterate.action_noise and iterate.envs_per_worker apply)")
    policy.add_argument("--policy-pretrained", help="gather with this shipped agent (a name or an agent file) "
                        "instead of collect.policy")
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
    dream = add_command(sub, "dream", cmd_dream, run_help=MODELS_RUN_HELP, pretrained=True)
    dream.add_argument("--gif", required=True, type=Path, help="the GIF to write: real episode left, dream right")
    dream.add_argument("--params", type=Path, help="controller .npy (default: RUN/controller/mean.npy, else zeros)")
    dream.add_argument("--seed", type=int, help="episode seed (default: evaluate.seed)")
    dream.add_argument("--temperature", type=float, help="dream temperature tau (sets dream.temperature)")
    dream.add_argument("--renderer", choices=["vae", "gan"], default="vae",
                       help="what draws the dream's z: V's decoder, or a GAN generator trained on V's latents "
                            "(train-gan --set gan.latent_source=vae)")
    dream.add_argument("--gan", type=Path, help="the GAN checkpoint of --renderer gan (default: RUN/gan.pt)")
    export = add_command(sub, "export-agent", cmd_export_agent, run_help=MODELS_RUN_HELP)
    export.add_argument("--out", required=True, type=Path, help="the agent file to write (.pt)")
    export.add_argument("--params", type=Path, help="controller .npy (default: RUN/controller/mean.npy)")
    add_music_command(sub)
    for entry_point in entry_points(group=COMMAND_GROUP):
        entry_point.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        resolve_pretrained(args)
        args.func(args)
    except (ConfigError, FileNotFoundError, ValueError, RunFolderInUseError) as err:
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
    finally:
        release_run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
