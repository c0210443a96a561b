"""Ray on a multi-node cluster: a head with no CPUs and two worker nodes of 1 CPU, all on this machine
(``ray.cluster_utils.Cluster``), the driver joined with this project's packages shipped as ``py_modules``.

The workers get V and M through the object store: the run folder is renamed once the weights are read (for the
evaluators, once their refs are made), and collection, a real-env CMA-ES generation and evaluation still give
what they give in this process. A worker node removed mid-generation loses no candidate's return, and the
generation equals the one without the fault.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from agents.cmaes import evolve
from agents.evaluation import evaluate_params
from agents.evaluators import RayEvaluator, SerialEvaluator
from rollouts.actor_pool import ClusterTooSmallError, ReplacingActorPool
from rollouts.collect import EnvSpec, collect_episodes, run_episodes
from rollouts.ray_cluster import PACKAGES, simulated_cluster
from rollouts.storage import episode_path, read_episode
from worldmodels.checkpoint import ModelWeights, save_untrained_checkpoint
from worldmodels.config import load_config
from worldmodels.config_schema import CMAESConfig
from worldmodels.controller import Controller
from worldmodels.controller_policy import WorldModelPolicySpec
from worldmodels.real_rollouts import RealEnvWorkerSpec

pytestmark = pytest.mark.slow  # a three-node cluster takes about 20 s to start on 2 cores

Z, H, A = 8, 16, 3
STEPS = 8
ENV = EnvSpec("worldmodels/CarRacing-v0", STEPS)
GENERATION = CMAESConfig(popsize=6, rollouts=1, sigma0=0.5, generations=1, seed=5, eval_every=1, eval_episodes=2)


@pytest.fixture(scope="module")
def cluster():
    """The cluster (:func:`rollouts.ray_cluster.simulated_cluster`: two worker nodes of 1 CPU), its driver connected
    with the project's code shipped."""
    if ray.is_initialized():  # another module's local Ray
        ray.shutdown()
    with simulated_cluster(nodes=2) as cluster:
        yield cluster


def write_run(run: Path) -> None:
    """Untrained V (z 8) and M (LSTM 16) where train-vae and train-mdnrnn leave them."""
    save_untrained_checkpoint(run / "vae.pt", "vae", {"z_size": Z})
    save_untrained_checkpoint(run / "mdnrnn.pt", "mdnrnn", {"z_size": Z, "action_size": A, "hidden_size": H})


def run_spec(run: Path) -> RealEnvWorkerSpec:
    """The CMA-ES worker of a fresh run folder ``run``."""
    write_run(run)
    config = load_config("carracing-tiny", ["device=cpu", f"env.max_episode_steps={STEPS}",
                                            "cmaes.envs_per_worker=2"])
    return RealEnvWorkerSpec.for_run(config, run)


def log_rows(path: Path) -> list[dict[str, str]]:
    """log.csv without the columns a fault changes (wall time, retried chunks)."""
    return [{k: v for k, v in row.items() if k not in ("seconds", "retried")} for row in csv.DictReader(path.open())]


def test_the_project_is_shipped_to_the_nodes(cluster):
    @ray.remote(num_cpus=1)
    def shipped() -> list[str]:
        """The project's packages a worker finds in what Ray unpacked on its node (a node of a real cluster has no
        copy of the driver's folder; here the worker's path holds that too)."""
        folders = [Path(entry) for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
        return [folder.name for entry in folders if "runtime_resources" in entry.parts
                for folder in entry.iterdir() if (folder / "__init__.py").is_file()]

    assert sorted(ray.get(shipped.remote())) == sorted(PACKAGES)


def test_controller_policy_collects_on_the_cluster_without_the_run_folder(cluster, tmp_path):
    write_run(tmp_path / "run")
    params = np.random.default_rng(0).normal(0.0, 0.5, Controller(Z, H, A).num_params)
    policy = WorldModelPolicySpec(ModelWeights.read(tmp_path / "run" / "vae.pt", "vae"),
                                  ModelWeights.read(tmp_path / "run" / "mdnrnn.pt", "mdnrnn"), tuple(params),
                                  action_noise=0.1)
    (tmp_path / "run").rename(tmp_path / "moved")
    report = collect_episodes(tmp_path / "episodes", ENV, policy, episodes=4, seed=30, num_workers=2,
                              progress=False, envs_per_worker=2)
    assert (report.collected, report.retried) == (4, 0)
    envs = [ENV.make() for _ in range(4)]
    here = run_episodes(envs, policy.make_batch(envs[0].action_space, 4), [30 + index for index in range(4)])
    for index, episode in enumerate(here):
        stored = read_episode(episode_path(tmp_path / "episodes", index))
        np.testing.assert_array_equal(stored.observations, episode.observations)
        np.testing.assert_array_equal(stored.actions, episode.actions)


def test_a_real_env_generation_and_evaluation_run_on_the_cluster_without_the_run_folder(cluster, tmp_path,
                                                                                      one_torch_thread):
    spec = run_spec(tmp_path / "run")
    evaluator = RayEvaluator(spec, num_workers=2, chunk_size=2)
    (tmp_path / "run").rename(tmp_path / "moved")  # the refs are made: no worker can read the run folder now
    try:
        evolve(evaluator, spec.num_params, GENERATION, tmp_path / "ray")
        params = np.load(tmp_path / "ray" / "mean.npy")
        report = evaluate_params(evaluator, params, episodes=3, seed=100)
    finally:
        evaluator.close()
    serial = SerialEvaluator(spec)
    evolve(serial, spec.num_params, GENERATION, tmp_path / "serial")
    assert log_rows(tmp_path / "ray" / "log.csv") == log_rows(tmp_path / "serial" / "log.csv")
    assert report.returns == evaluate_params(serial, params, episodes=3, seed=100).returns


def test_more_workers_than_the_cluster_has_cpus_is_a_clear_error(cluster):
    with pytest.raises(ClusterTooSmallError, match=r"3 Ray actors of 1 CPU each need 3 CPUs, but the Ray cluster "
                                                   r"has 2 CPUs on 3 live nodes: lower num_workers .* to 2 or fewer"):
        ReplacingActorPool(lambda: None, 3)


def test_a_local_ray_started_beside_the_cluster_is_a_new_one(cluster):
    """``init_ray`` without an address starts its own Ray while this cluster, which Ray's default would join (its
    address is in /tmp/ray/ray_current_cluster), runs on the machine."""
    code = ("import ray; from rollouts.ray_cluster import init_ray; init_ray(num_cpus=1); "
            "print(ray.get_runtime_context().gcs_address)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] != cluster.address


def dead_nodes_within(seconds: float) -> int:
    """How many of the cluster's nodes Ray reports dead, polled until at least one is or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        dead = sum(not node["Alive"] for node in ray.nodes())
        if dead or time.monotonic() > deadline:
            return dead
        time.sleep(0.5)


def test_a_node_lost_mid_generation_loses_no_return_and_changes_nothing(cluster, tmp_path, one_torch_thread):
    """Runs last: it leaves the cluster one worker node short. The serial run uses one torch thread, as the
    1-CPU actors do."""
    spec = run_spec(tmp_path / "run")
    removed = []

    def remove_a_node(pool: ReplacingActorPool) -> None:
        # Once every actor has started: one still starting on the lost node would die unstarted and be replaced,
        # and no chunk would be redone.
        if not removed and not pool.starting:
            node = next(iter(cluster.worker_nodes))
            cluster.remove_node(node)
            removed.append(node)

    faulty = RayEvaluator(spec, num_workers=2, chunk_size=1, on_chunk=remove_a_node)
    ray.get(list(faulty.pool.starting))  # both actors up before the first chunk, however loaded the machine
    (tmp_path / "run").rename(tmp_path / "moved")
    try:
        evolve(faulty, spec.num_params, dataclasses.replace(GENERATION, eval_every=1000), tmp_path / "faulty")
    finally:
        faulty.close()
    assert removed and faulty.retried >= 1
    assert dead_nodes_within(60.0) == 1  # Ray marks a lost node dead on its own schedule, slower on a loaded machine
    evolve(SerialEvaluator(spec), spec.num_params, dataclasses.replace(GENERATION, eval_every=1000),
           tmp_path / "whole")
    assert log_rows(tmp_path / "faulty" / "log.csv") == log_rows(tmp_path / "whole" / "log.csv")
    for name in ("mean.npy", "best.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "faulty" / name), np.load(tmp_path / "whole" / name))
