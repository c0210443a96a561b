"""The ``worldmodels music`` command: ``music train --model lstm|musegan`` and ``music generate --out x.mid``."""

from __future__ import annotations

import argparse
from pathlib import Path

from worldmodels.commands import add_command, config_from_args, run_config

MODELS = ("lstm", "musegan")


def cmd_music_train(args: argparse.Namespace) -> None:
    """Train the music LSTM or MuseGAN on the Bach chorales (or music.folder); the parsed music is cached in --run,
    with the checkpoint and log (resumes RUN/music_lstm.pt or RUN/musegan.pt)."""
    from worldmodels.music.train import train_musegan, train_music_lstm

    train = train_music_lstm if args.model == "lstm" else train_musegan
    summary = train(run_config(args), args.run)
    print(f"music train {args.model}: {summary.describe()}")


def cmd_music_generate(args: argparse.Namespace) -> None:
    """Write music.bars bars from the trained model of --run to the MIDI file --out."""
    from worldmodels.music.generate import generate_music

    for name in ("bars", "temperature", "seed"):
        if getattr(args, name) is not None:
            args.set.append(f"music.{name}={getattr(args, name)}")
    print(f"music generate {args.model}: {generate_music(args.run, args.model, args.out, config_from_args(args).music)}")


def add_music_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``music`` with its ``train`` and ``generate`` subcommands to the ``worldmodels`` parser."""
    music = subparsers.add_parser("music", help="music generators: the book's LSTM with attention and MuseGAN",
                                  description=__doc__)
    commands = music.add_subparsers(dest="music_command", required=True)
    train = add_command(commands, "train", cmd_music_train)
    generate = add_command(commands, "generate", cmd_music_generate)
    for parser in (train, generate):
        parser.add_argument("--model", choices=MODELS, default="lstm", help="which generator (default: lstm)")
        parser.add_argument("--run", required=True, type=Path, help="folder for the config, music cache, "
                            "checkpoints and logs")
    generate.add_argument("--out", required=True, type=Path, help="the MIDI file to write")
    generate.add_argument("--bars", type=int, help="bars to write (sets music.bars)")
    generate.add_argument("--temperature", type=float, help="LSTM sampling temperature (sets music.temperature)")
    generate.add_argument("--seed", type=int, help="sampling seed (sets music.seed)")
