"""Ray collection: files, shapes, dtypes, seeds, resume, worker death, corrupt files, bad env ids."""

import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import ray

from rollouts.actor_pool import ReplacingActorPool
from rollouts.collect import CollectError, EnvSpec, EpisodeWorker, PolicySpec, collect_episodes
from rollouts.policy_names import POLICY_NAMES
from rollouts.ray_cluster import init_ray
from rollouts.storage import EpisodeFileError, episode_path, read_episode
from worldmodels.checkpoint import ModelWeights, save_untrained_checkpoint
from worldmodels.cli import main
from worldmodels.config import load_config, save_config
from worldmodels.controller import Controller
from worldmodels.controller_policy import WorldModelPolicySpec

STEPS = 15
ENV = EnvSpec("worldmodels/CarRacing-v0", max_episode_steps=STEPS)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    init_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_collect_two_episodes_per_policy(tmp_path, policy):
    report = collect_episodes(tmp_path, ENV, PolicySpec(policy), episodes=2, seed=100, num_workers=2, progress=False)
    assert (report.collected, report.skipped, report.retried) == (2, 0, 0)
    assert report.frames == 2 * (STEPS + 1)
    for index in range(2):
        episode = read_episode(episode_path(tmp_path, index))
        assert episode.observations.shape == (STEPS + 1, 64, 64, 3) and episode.observations.dtype == np.uint8
        assert episode.actions.shape == (STEPS, 3) and episode.actions.dtype == np.float32
        assert np.all(np.abs(episode.actions) <= 1.0)
        assert episode.rewards.shape == (STEPS,) and episode.rewards.dtype == np.float32
        assert episode.terminated.dtype == bool and episode.truncated[-1]
        assert episode.meta["seed"] == 100 + index and episode.meta["policy"] == policy
        assert episode.meta["env_id"] == "worldmodels/CarRacing-v0"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["episodes"] == 2 and manifest["frames"] == 2 * (STEPS + 1)
    assert [e["seed"] for e in manifest["entries"]] == [100, 101]
    assert not list(tmp_path.glob("*.tmp"))


def test_episodes_are_a_function_of_their_seed(tmp_path):
    collect_episodes(tmp_path, ENV, PolicySpec("brownian"), episodes=2, seed=7, progress=False)
    stored = read_episode(episode_path(tmp_path, 1))
    again = EpisodeWorker(ENV, PolicySpec("brownian")).run(1, 8)  # episode 1 of seed 7 uses seed 8
    (tmp_path / "again.npz").write_bytes(again)
    rerun = read_episode(tmp_path / "again.npz")
    np.testing.assert_array_equal(stored.observations, rerun.observations)
    np.testing.assert_array_equal(stored.actions, rerun.actions)
    other = read_episode(episode_path(tmp_path, 0))
    assert not np.array_equal(other.actions, stored.actions)


def test_resume_skips_stored_episodes_and_regathers_corrupt_ones(tmp_path):
    collect_episodes(tmp_path, ENV, PolicySpec("uniform"), episodes=2, progress=False)
    original = read_episode(episode_path(tmp_path, 1))
    mtime = episode_path(tmp_path, 0).stat().st_mtime_ns
    episode_path(tmp_path, 1).write_bytes(b"not an npz file")
    report = collect_episodes(tmp_path, ENV, PolicySpec("uniform"), episodes=3, progress=False)
    assert (report.collected, report.skipped) == (2, 1)
    assert episode_path(tmp_path, 0).stat().st_mtime_ns == mtime
    assert (tmp_path / "episode_000001.npz.corrupt").read_bytes() == b"not an npz file"
    np.testing.assert_array_equal(read_episode(episode_path(tmp_path, 1)).observations, original.observations)
    report = collect_episodes(tmp_path, ENV, PolicySpec("uniform"), episodes=3, progress=False)
    assert (report.collected, report.skipped) == (0, 3)


def test_killed_workers_are_replaced_and_their_episodes_retried(tmp_path):
    killed = []

    def kill_every_worker_once(index, actors):
        if not killed:
            killed.append(index)
            for actor in actors:
                ray.kill(actor, no_restart=True)

    report = collect_episodes(tmp_path, ENV, PolicySpec("random_controller"), episodes=4, num_workers=2,
                              progress=False, on_episode=kill_every_worker_once)
    assert killed and report.retried >= 1
    assert report.collected == 4
    for index in range(4):
        assert read_episode(episode_path(tmp_path, index)).meta["seed"] == index


@pytest.fixture(scope="module")
def controller(tmp_path_factory) -> WorldModelPolicySpec:
    """A world-model data policy: untrained V (z 8) and M (LSTM 16), a random C on [z, h]."""
    folder = tmp_path_factory.mktemp("models")
    save_untrained_checkpoint(folder / "vae.pt", "vae", {"z_size": 8})
    save_untrained_checkpoint(folder / "mdnrnn.pt", "mdnrnn", {"z_size": 8, "action_size": 3, "hidden_size": 16})
    params = np.random.default_rng(0).normal(0.0, 0.5, Controller(8, 16, 3).num_params)
    return WorldModelPolicySpec(ModelWeights.read(folder / "vae.pt", "vae"),
                                ModelWeights.read(folder / "mdnrnn.pt", "mdnrnn"), tuple(params), action_noise=0.1)


def assert_same_episodes(folder, other, indices):
    for index in indices:
        first, second = read_episode(episode_path(folder, index)), read_episode(episode_path(other, index))
        for name in ("observations", "actions", "rewards", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=f"{index} {name}")
        assert first.meta == second.meta


def test_controller_episodes_are_the_same_bit_for_bit_whatever_the_envs_per_worker(tmp_path, controller):
    """Five episodes lock-stepped in one worker (V's and C's batch 5, past the batch-4 rounding change of a batched
    matrix product) equal the same episodes gathered one env per worker by two workers."""
    one = collect_episodes(tmp_path / "one", ENV, controller, episodes=5, seed=40, num_workers=2, progress=False)
    five = collect_episodes(tmp_path / "five", ENV, controller, episodes=5, seed=40, num_workers=1, progress=False,
                            envs_per_worker=5)
    assert one.collected == five.collected == 5 and five.frames == 5 * (STEPS + 1)
    assert_same_episodes(tmp_path / "one", tmp_path / "five", range(5))
    assert read_episode(episode_path(tmp_path / "five", 3)).meta["policy"] == "controller"


def test_lockstepped_groups_survive_a_killed_worker_and_resume_without_losing_an_episode(tmp_path, controller):
    killed = []

    def kill_every_worker_once(index, actors):
        if not killed:
            killed.append(index)
            for actor in actors:
                ray.kill(actor, no_restart=True)

    # three groups of 3 on two workers: the group queued behind the first result meets a killed worker at least
    report = collect_episodes(tmp_path / "groups", ENV, controller, episodes=9, num_workers=2, progress=False,
                              envs_per_worker=3, on_episode=kill_every_worker_once)
    assert killed and report.collected == 9 and report.retried in (3, 6)  # episodes, whole groups of 3
    episode_path(tmp_path / "groups", 4).write_bytes(b"not an npz file")
    episode_path(tmp_path / "groups", 5).unlink()
    report = collect_episodes(tmp_path / "groups", ENV, controller, episodes=10, num_workers=2, progress=False,
                              envs_per_worker=3)
    assert (report.collected, report.skipped, report.retried) == (3, 7, 0)
    collect_episodes(tmp_path / "alone", ENV, controller, episodes=10, num_workers=2, progress=False)
    assert_same_episodes(tmp_path / "groups", tmp_path / "alone", range(10))
    assert json.loads((tmp_path / "groups" / "manifest.json").read_text())["episodes"] == 10


def test_an_episode_that_keeps_failing_stops_the_run_with_its_error(tmp_path):
    def kill_every_time(index, actors):
        for actor in actors:
            ray.kill(actor, no_restart=True)

    with pytest.raises(CollectError, match="failed on all 1 attempts"):
        collect_episodes(tmp_path, ENV, PolicySpec("uniform"), episodes=3, num_workers=1, max_retries=0,
                         progress=False, on_episode=kill_every_time)
    assert read_episode(episode_path(tmp_path, 0)).length == STEPS  # what was stored is kept


def test_bad_env_id_and_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot make environment 'worldmodels/NoSuchEnv-v0'"):
        collect_episodes(tmp_path, EnvSpec("worldmodels/NoSuchEnv-v0"), PolicySpec(), episodes=1, progress=False)
    with pytest.raises(ValueError, match="refused the options"):
        collect_episodes(tmp_path, EnvSpec("worldmodels/CarRacing-v0", options={"wheels": 5}), PolicySpec(),
                         episodes=1, progress=False)
    with pytest.raises(ValueError, match="unknown data policy"):
        EpisodeWorker(ENV, PolicySpec("greedy"))


def test_resume_takes_listed_files_as_listed_and_verifies_the_others(tmp_path, monkeypatch):
    collect_episodes(tmp_path, ENV, PolicySpec("uniform"), episodes=3, progress=False)
    verified: list[str] = []
    monkeypatch.setattr("rollouts.collect.read_episode", lambda path: verified.append(path.name) or read_episode(path))
    assert collect_episodes(tmp_path, ENV, PolicySpec("uniform"), episodes=3, progress=False).skipped == 3
    assert verified == []  # each file is the one the manifest lists: not read again
    path = episode_path(tmp_path, 2)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000))  # touched since: verify it
    assert collect_episodes(tmp_path, ENV, PolicySpec("uniform"), episodes=3, progress=False).skipped == 3
    assert verified == ["episode_000002.npz"]
    verified.clear()
    assert collect_episodes(tmp_path, ENV, PolicySpec("uniform"), episodes=3, progress=False).skipped == 3
    assert verified == []  # listed again, with its new time


def test_corrupt_file_error_names_the_file(tmp_path):
    collect_episodes(tmp_path, ENV, PolicySpec("uniform"), episodes=2, progress=False)
    path = episode_path(tmp_path, 0)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(EpisodeFileError, match="episode_000000.npz"):
        read_episode(path)
    assert read_episode(episode_path(tmp_path, 1)).length == STEPS


def test_cli_collect_runs_in_a_fresh_process(tmp_path):
    """The README's first stage, as a user runs it: a new process starting its own local Ray."""
    out = tmp_path / "episodes"
    result = subprocess.run(
        [sys.executable, "-m", "worldmodels.cli", "collect", "--preset", "carracing-tiny", "--out", str(out),
         "--set", "collect.episodes=2", "--set", "env.max_episode_steps=10"],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "2 episodes gathered" in result.stdout
    assert load_config(file=out / "collect_config.yaml").collect.episodes == 2
    assert [read_episode(p).length for p in sorted(out.glob("episode_*.npz"))] == [10, 10]


def test_cli_collect_gathers_with_a_run_s_controller_after_the_random_episodes(tmp_path, controller, capsys):
    """``collect --policy-run RUN`` adds episodes acted by RUN's mean controller (V, M and C) to a data folder."""
    run = tmp_path / "run"
    (run / "controller").mkdir(parents=True)
    for name in ("vae", "mdnrnn"):
        save_untrained_checkpoint(run / f"{name}.pt", name, getattr(controller, name).model_args)
    np.save(run / "controller" / "mean.npy", np.asarray(controller.params, np.float32))
    config = load_config("carracing-tiny")
    save_config(config, run / "config.yaml")
    out = tmp_path / "episodes"
    tiny = ["collect", "--preset", "carracing-tiny", "--set", f"env.max_episode_steps={STEPS}", "--out", str(out)]
    assert main([*tiny, "--set", "collect.episodes=1"]) == 0
    assert main([*tiny, "--set", "collect.episodes=3", "--set", "iterate.action_noise=0.1", "--policy-run", str(run)]) == 0
    policies = [read_episode(episode_path(out, index)).meta["policy"] for index in range(3)]
    assert policies == ["random_controller", f"mean controller of {run}", f"mean controller of {run}"]
    spec = WorldModelPolicySpec(ModelWeights.read(run / "vae.pt", "vae"), ModelWeights.read(run / "mdnrnn.pt", "mdnrnn"),
                                controller.params, action_noise=0.1)
    same = collect_episodes(tmp_path / "direct", EnvSpec(config.env.id, STEPS), spec, episodes=3,
                            seed=config.collect.seed, first_index=1, progress=False)
    assert same.collected == 2
    for index in (1, 2):  # the episodes the policy spec gathers with the run's files
        np.testing.assert_array_equal(read_episode(episode_path(out, index)).actions,
                                      read_episode(episode_path(tmp_path / "direct", index)).actions)
    (run / "config.yaml").unlink()
    capsys.readouterr()
    assert main([*tiny, "--set", "collect.episodes=4", "--policy-run", str(run)]) == 2
    assert "has no config.yaml" in capsys.readouterr().err
    assert not episode_path(out, 3).exists()


def test_cli_refuses_a_bad_value_before_starting_ray(tmp_path, capsys):
    assert main(["collect", "--preset", "carracing-tiny", "--out", str(tmp_path), "--set", "collect.policy=x"]) == 2
    assert "collect.policy" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@ray.remote(num_cpus=0)
class SlowActor:
    def __init__(self) -> None:
        time.sleep(0.6)  # slow to start

    def work(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds


def test_a_pool_that_gets_no_result_says_why_and_still_finishes(caplog):
    pool = ReplacingActorPool(SlowActor.remote, 1, stall_warning_s=0.2)
    results = []
    try:
        with caplog.at_level(logging.INFO, logger="rollouts.actor_pool"):
            pool.map([1.0], lambda actor, seconds: actor.work.remote(seconds), lambda _, value: results.append(value))
    finally:
        pool.shutdown()
    assert results == [1.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    # while the actor starts: the likely cause; once it runs its task: progress, no false alarm
    assert warnings and all("no result from 1 Ray actors" in m and "lower num_workers" in m for m in warnings)
    assert any("1 Ray actors, all started, have run their tasks" in m for m in infos)
