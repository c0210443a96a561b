"""The paper's iterative procedure: gather episodes with the current controller, train M (and optionally V)
further on old plus new episodes, evolve C further, repeat (``worldmodels run --iterations N``).

Round 1 is the ordinary pipeline in RUN/ (random-policy data). Round k >= 2 lives in RUN/iterations/k/:

    RUN/episodes/                 ``iterate.episodes`` more episodes, gathered by round k-1's mean controller
                                  (episode i on seed ``collect.seed + i``, its ``policy`` naming the round)
    RUN/iterations/k/vae.pt       round k-1's V, trained ``vae.epochs`` more epochs with ``iterate.retrain_vae``
    RUN/iterations/k/mdnrnn.pt    round k-1's M trained ``mdnrnn.steps`` more steps on every episode
    RUN/iterations/k/controller/  round k-1's CMA-ES state, evolved ``cmaes.generations`` more generations
                                  (log.csv and eval.csv go on from round k-1's, so the curves span the rounds)
    RUN/iterations/k/evaluation.json, *.png, dream.gif, config.yaml

Each round starts from copies of the previous round's files (written atomically, mtimes kept) and every
stage resumes, so an interrupted round continues where it stopped and a finished one is skipped.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from agents.cmaes import generations_done
from rollouts.atomic import atomic_path
from worldmodels.checkpoint import read_checkpoint
from worldmodels.config import save_config
from worldmodels.config_schema import Config
from worldmodels.controller_policy import run_policy
from worldmodels.encode import encode_episodes
from worldmodels.run_layout import (
    CONFIG_NAME,
    CONTROLLER_DIR,
    EPISODES_DIR,
    ITERATIONS_DIR,
    MDNRNN_CHECKPOINT_NAME,
    MDNRNN_LOG_NAME,
    MDNRNN_MEMBERS_DIR,
    VAE_CHECKPOINT_NAME,
    VAE_LOG_NAME,
)
from worldmodels.stages import collect_stage
from worldmodels.train_mdnrnn import train_mdnrnn
from worldmodels.train_vae import train_vae

Stage = Callable[[str, Callable[[], str]], None]
"""Runs one named stage (the pipeline's timer and printer): ``stage(name, work)``; ``work`` returns a line."""


def round_dir(run_dir: Path, round_number: int) -> Path:
    """Where round ``round_number`` (1-based) keeps its models: RUN itself for round 1."""
    return run_dir if round_number == 1 else run_dir / ITERATIONS_DIR / str(round_number)


def episodes_after(config: Config, round_number: int) -> int:
    """Episodes stored once round ``round_number`` has gathered its own."""
    per_round = config.iterate.episodes or config.collect.episodes
    return config.collect.episodes + (round_number - 1) * per_round


def round_config(config: Config, previous: Path) -> Config:
    """``config`` with budgets that add one round's training to what ``previous`` (a round folder) holds."""
    vae_epochs = read_checkpoint(previous / VAE_CHECKPOINT_NAME, kind="vae").epoch
    mdnrnn_steps = read_checkpoint(previous / MDNRNN_CHECKPOINT_NAME, kind="mdnrnn").step
    generations = generations_done(previous / CONTROLLER_DIR)
    return dataclasses.replace(
        config,
        vae=dataclasses.replace(config.vae, epochs=vae_epochs + config.vae.epochs),
        mdnrnn=dataclasses.replace(config.mdnrnn, steps=mdnrnn_steps + config.mdnrnn.steps),
        cmaes=dataclasses.replace(config.cmaes, generations=generations + config.cmaes.generations),
    )


def run_round(config: Config, run_dir: Path, round_number: int, stage: Stage,
              train_controller: Callable[[Config, Path], str], evaluate: Callable[[Config, Path], str],
              pictures: Callable[[Config, Path], str]) -> Config:
    """Round ``round_number`` >= 2 into RUN/iterations/k/; returns the round's config (its budgets in total).

    ``train_controller``, ``evaluate`` and ``pictures`` are the pipeline's stages, given the round's config
    and folder.
    """
    if round_number < 2:
        raise ValueError(f"round {round_number}: round 1 is the ordinary pipeline; rounds start at 2")
    previous, here = round_dir(run_dir, round_number - 1), round_dir(run_dir, round_number)
    episodes = run_dir / EPISODES_DIR
    tag = f" (round {round_number})"
    stage("collect" + tag, lambda: _collect_with_controller(config, previous, episodes, round_number))
    for name in (VAE_CHECKPOINT_NAME, VAE_LOG_NAME, MDNRNN_CHECKPOINT_NAME, MDNRNN_LOG_NAME, MDNRNN_MEMBERS_DIR):
        _copy_once(previous / name, here / name)
    _copy_once(previous / CONTROLLER_DIR, here / CONTROLLER_DIR)
    cfg = round_config(config, previous)
    save_config(cfg, here / CONFIG_NAME)
    if config.iterate.retrain_vae:
        stage("train-vae" + tag, lambda: train_vae(cfg, episodes, here).describe())
    stage("encode" + tag, lambda: f"{encode_episodes(here / VAE_CHECKPOINT_NAME, episodes, device=cfg.device)} "
                                  "episodes encoded (the others were up to date)")
    stage("train-mdnrnn" + tag, lambda: train_mdnrnn(cfg, episodes, here).describe())
    stage("train-controller" + tag, lambda: train_controller(cfg, here))
    stage("evaluate" + tag, lambda: evaluate(cfg, here))
    stage("pictures" + tag, lambda: pictures(cfg, here))
    return cfg


def _collect_with_controller(config: Config, previous: Path, episodes: Path, round_number: int) -> str:
    """Gather round ``round_number``'s episodes with round k-1's mean controller (with its V and M)."""
    policy = run_policy(previous, config.controller, config.iterate.action_noise,
                        name=f"controller of round {round_number - 1}")
    return collect_stage(config, episodes, policy, first_index=episodes_after(config, round_number - 1),
                         episodes=episodes_after(config, round_number)).describe()


def _copy_once(source: Path, target: Path) -> None:
    """Copy file or folder ``source`` to ``target`` (mtimes kept) unless ``target`` exists; atomic."""
    if target.exists() or not source.exists():
        return
    if source.is_file():
        with atomic_path(target) as tmp:
            shutil.copy2(source, tmp)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
