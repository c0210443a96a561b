"""The ``worldmodels`` commands that live in ``agents``: ``train-controller`` and ``evaluate``.

Registered through the ``worldmodels.commands`` entry point (pyproject.toml), so ``worldmodels.cli`` never
imports this package.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.cmaes import GenerationRecord
from agents.dream_training import train_controller_dream
from agents.real_env import (
    EPISODES_DIR,
    EVALUATION_NAME,
    evaluate_controller_real,
    train_controller_real,
)
from rollouts.ray_cluster import init_ray
from worldmodels.cli import (
    add_command,
    add_ray_address_option,
    config_from_args,
    run_config,
)
from worldmodels.controller import CONTROLLER_DIR


def _print_generation(record: GenerationRecord) -> None:
    print(f"train-controller: {record.describe()}", flush=True)


def cmd_train_controller(args: argparse.Namespace) -> None:
    """Evolve C with CMA-ES from RUN/vae.pt and RUN/mdnrnn.pt, in the real env or in M's dream; outputs in
    RUN/controller/ (resumes)."""
    if args.temperature is not None:
        args.set.append(f"dream.temperature={args.temperature}")
    config = run_config(args)
    init_ray(args.ray_address or config.ray.address, config.ray.num_cpus)
    if args.env == "dream":
        data = args.data or Path(args.run) / EPISODES_DIR
        records = train_controller_dream(config, args.run, data, on_generation=_print_generation)
    else:
        records = train_controller_real(config, args.run, on_generation=_print_generation)
    done = records[-1].generation + 1 if records else config.cmaes.generations
    print(f"train-controller: {done} generations done -> {Path(args.run) / CONTROLLER_DIR}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Run a trained controller on --episodes distinct seeds in parallel; write JSON and print mean +- std."""
    config = config_from_args(args)
    episodes = args.episodes or config.evaluate.episodes
    init_ray(args.ray_address or config.ray.address, config.ray.num_cpus)
    report = evaluate_controller_real(config, args.run, episodes, args.params, gif=args.gif)
    out = args.out or Path(args.run) / EVALUATION_NAME
    report.write_json(out)
    print(f"evaluate: {report.summary()} -> {out}" + (f", first episode as {args.gif}" if args.gif else ""))


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-controller`` and ``evaluate`` to the ``worldmodels`` parser."""
    train = add_command(subparsers, "train-controller", cmd_train_controller)
    train.add_argument("--env", choices=["real", "dream"], default="real",
                       help="where candidates are evaluated: the real environment, or M's batched dream")
    train.add_argument("--temperature", type=float, help="dream temperature tau (sets dream.temperature)")
    train.add_argument("--data", type=Path, help="encoded episodes whose first frames start the dreams "
                       f"(default: RUN/{EPISODES_DIR})")
    evaluate = add_command(subparsers, "evaluate", cmd_evaluate)
    evaluate.add_argument("--episodes", type=int, help="episodes, each on its own seed "
                          "(default: evaluate.episodes, 100 as published)")
    evaluate.add_argument("--params", type=Path, help="controller parameters .npy (default: RUN/controller/mean.npy)")
    evaluate.add_argument("--out", type=Path, help="JSON report (default: RUN/evaluation.json)")
    evaluate.add_argument("--gif", type=Path, help="also record the first episode as this GIF")
    for parser in (train, evaluate):
        parser.add_argument("--run", required=True, type=Path, help="run folder holding vae.pt and mdnrnn.pt")
        add_ray_address_option(parser)
