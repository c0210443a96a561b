"""Evolving C where ``controller.train_in`` says: the real env, M's dream, or the dream first and then the real env.

``dream_then_real`` is one CMA-ES search (one pycma strategy, resumable anywhere): generations 0 to
``cmaes.dream_generations`` - 1 evaluate their candidates in M's batched dream (the mean solution in the dream and
in the real env), generations ``cmaes.dream_generations`` to ``cmaes.generations`` - 1 in the real env (the mean
solution there). The dream's returns must stand for the real env's, so M needs a done head (without one a dream
only ends at its step cap) and, with ``dream.reward_mode`` "head", a reward head (CarRacing: preset
``carracing-cpu-full-dream-then-real``); "survival" (+1 per step alive) stands for envs that pay that, such as Doom
TakeCover.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agents.cmaes import GenerationRecord
from agents.dream_training import train_controller_dream
from agents.real_env import train_controller_real
from worldmodels.checkpoint import read_model_args
from worldmodels.config_schema import Config
from worldmodels.real_rollouts import world_model_paths


def train_controller(config: Config, run_dir: str | Path, data_dir: str | Path,
                     on_generation: Callable[[GenerationRecord], None] | None = None) -> list[GenerationRecord]:
    """Evolve C into RUN/controller/ (resuming it) where ``controller.train_in`` says; Ray must be initialised.

    ``data_dir`` holds the encoded episodes whose first frames start the dreams (unread for "real").

    :raises ValueError: ``dream_then_real`` with an M whose dream cannot give the real env's returns.
    """
    train_in = config.controller.train_in
    if train_in == "real":
        return train_controller_real(config, run_dir, on_generation)
    if train_in == "dream":
        return train_controller_dream(config, run_dir, data_dir, on_generation)
    check_dream_then_real(config, Path(run_dir))
    return train_controller_dream(config, run_dir, data_dir, on_generation, real_from=config.cmaes.dream_generations)


def dream_generations(config: Config) -> int:
    """Generations of the search whose candidates ``controller.train_in`` evaluates in M's dream."""
    cmaes = config.cmaes
    return {"real": 0, "dream": cmaes.generations,
            "dream_then_real": min(cmaes.dream_generations, cmaes.generations)}[config.controller.train_in]


def check_dream_then_real(config: Config, run_dir: Path) -> None:
    """Refuse, in one line, a run whose M lacks a head the dream needs to give the real env's returns.

    :raises FileNotFoundError: RUN/vae.pt or RUN/mdnrnn.pt is missing.
    :raises ValueError: M has no done head, or no reward head with ``dream.reward_mode`` "head".
    """
    _, mdnrnn_path = world_model_paths(run_dir)
    args = read_model_args(mdnrnn_path, "mdnrnn")
    needed = {"done_head": "a done head"}
    if config.dream.reward_mode == "head":
        needed["reward_head"] = "a reward head"
    missing = [name for key, name in needed.items() if not args.get(key)]
    if missing:
        raise ValueError(f"controller.train_in dream_then_real needs M with {' and '.join(needed.values())} (the dream "
                         f"must end and pay as the real env does), and {mdnrnn_path} has no "
                         f"{' and no '.join(name.removeprefix('a ') for name in missing)}: train M with "
                         "mdnrnn.reward_head=true and mdnrnn.done_head=true (preset "
                         "carracing-cpu-full-dream-then-real), or set controller.train_in=real")
