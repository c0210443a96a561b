"""The data stage driven by a config: collecting episodes (the training stages take a config directly:
:func:`worldmodels.train_vae.train_vae`, :func:`worldmodels.encode.encode_episodes`,
:func:`worldmodels.train_mdnrnn.train_mdnrnn`)."""

from __future__ import annotations

from pathlib import Path

from rollouts.collect import CollectReport, DataPolicySpec, EnvSpec, PolicySpec, check_same_env, collect_episodes
from rollouts.storage import read_manifest
from worldmodels.config import save_config
from worldmodels.config_schema import Config
from worldmodels.run_layout import COLLECT_CONFIG_NAME
from worldmodels.seeds import check_collect_seeds
from worldmodels.tensorboard import ScalarLog, event_dir


def env_spec(config: Config) -> EnvSpec:
    """The environment every stage of this config runs (id, step cap, options)."""
    return EnvSpec(config.env.id, config.env.max_episode_steps, config.env.options)


def collect_stage(config: Config, out_dir: Path, policy: DataPolicySpec | None = None, first_index: int = 0,
                  episodes: int | None = None) -> CollectReport:
    """Gather episodes ``first_index .. episodes - 1`` (``episodes`` None: ``collect.episodes``; episode i on seed
    ``collect.seed + i``) into ``out_dir`` with Ray workers (Ray must be initialised), refused when their seeds meet
    the held-out ones (:func:`worldmodels.seeds.check_collect_seeds`); episodes already stored are skipped. The config
    is saved beside them, once the folder is known to hold no other environment's episodes
    (:func:`rollouts.collect.check_same_env`).

    :param policy: the data policy; None: ``collect.policy``. A trained controller
        (:func:`worldmodels.controller_policy.run_policy`) steps ``iterate.envs_per_worker`` envs per worker in
        lock-step, as a round of the iterative procedure gathers.
    """
    check_same_env(out_dir, config.env.id)
    collect = config.collect
    episodes = collect.episodes if episodes is None else episodes
    check_collect_seeds(config, first_index, episodes)
    save_config(config, out_dir / COLLECT_CONFIG_NAME)
    if policy is None:
        policy = PolicySpec(collect.policy, collect.brownian_sigma, collect.controller_weight_std, collect.max_repeat)
        envs_per_worker = 1
    else:
        envs_per_worker = config.iterate.envs_per_worker
    report = collect_episodes(
        out_dir,
        env_spec(config),
        policy,
        episodes=episodes,
        seed=collect.seed,
        num_workers=collect.num_workers,
        max_retries=collect.max_retries,
        max_stall_s=config.ray.max_stall_s,
        first_index=first_index,
        envs_per_worker=envs_per_worker,
    )
    if report.collected:
        log_episodes(out_dir)
    return report


def log_episodes(episodes_dir: Path) -> None:
    """Write every stored episode's return and length, from the folder's manifest, as TensorBoard scalars
    ``collect/episodic_return`` and ``collect/episode_length`` at step = the episode's index, into
    ``<episodes_dir's parent>/tensorboard/collect`` (RUN/tensorboard/collect for a run's RUN/episodes). The whole
    curve is rewritten (purge from step 0), so a resumed or extended collection shows each episode once."""
    entries = (read_manifest(episodes_dir) or {}).get("entries", [])
    with ScalarLog(event_dir(episodes_dir.parent, "collect"), "collect", first_step=0) as scalars:
        for entry in entries:
            scalars.write(int(entry["index"]), {"episodic_return": float(entry["return"]),
                                                "episode_length": float(entry["length"])})
