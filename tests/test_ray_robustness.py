"""Ray robustness: a pool that can get no result fails with a clear error instead of hanging, and a local Ray
listens on 127.0.0.1 only.

Tests that need their own Ray run it in a subprocess, so they hold whether or not this pytest process already
has Ray initialised (other modules' fixtures leave it up).
"""

import itertools
import json
import logging
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import ray

from rollouts import actor_pool
from rollouts.actor_pool import (
    DEFAULT_MAX_STALL_S,
    ClusterTooSmallError,
    PoolStalledError,
    ReplacingActorPool,
    TaskFailedError,
    live_node_count,
    wait_for_first,
)
from rollouts.ray_cluster import init_ray
from worldmodels.cli import main
from worldmodels.config import load_config

LOOPBACK_IPS = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


@pytest.fixture
def local_ray():
    """Ray for this test: the one already running in this process, else a local one shut down afterwards."""
    started = not ray.is_initialized()
    init_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


@ray.remote
class Idle:
    def ready(self) -> bool:
        return True


def test_a_pool_whose_actors_can_never_start_raises_a_clear_error(local_ray):
    too_many = int(ray.cluster_resources()["CPU"]) + 1
    pool = ReplacingActorPool(Idle.options(num_cpus=too_many).remote, 1, stall_warning_s=0.2, max_stall_s=1.0)
    try:  # the message names the 1 s bound it gave up at
        with pytest.raises(PoolStalledError, match=r"no result from 1 Ray actors in 1 s .*CPUs free.*lower num_workers"):
            pool.map(["only task"], lambda actor, task: actor.ready.remote(), lambda task, value: None)
    finally:
        pool.shutdown()


def test_a_pool_larger_than_the_cluster_is_refused_naming_the_numbers(local_ray):
    cpus = int(ray.cluster_resources()["CPU"])
    with pytest.raises(ClusterTooSmallError, match=rf"{cpus + 1} Ray actors of 1 CPU each need {cpus + 1} CPUs, but "
                                                   rf"the Ray cluster has {cpus} CPUs on 1 live nodes: lower "
                                                   rf"num_workers .* to {cpus} or fewer"):
        ReplacingActorPool(lambda: None, cpus + 1)


@ray.remote(num_cpus=1, max_restarts=0)
class Echo:
    def echo(self, value: int) -> int:
        return value


def test_a_retried_task_goes_to_a_started_actor_while_the_replacement_waits_for_cpus(local_ray):
    """As when a node leaves the cluster: the lost actor's replacement can never be placed."""
    made = []

    def make_actor():
        made.append(Echo.options(num_cpus=1 if len(made) < 2 else 1000).remote())
        return made[-1]

    results = {}

    def on_result(task: int, value: int) -> None:
        results[task] = value
        if len(results) == 1:
            ray.kill(pool.actors[0], no_restart=True)

    pool = ReplacingActorPool(make_actor, 2, stall_warning_s=5.0, max_stall_s=60.0)
    ray.get([actor.echo.remote(0) for actor in made])  # both started: the one killed below has run tasks
    try:
        retried = pool.map(list(range(6)), lambda actor, task: actor.echo.remote(task), on_result)
    finally:
        pool.shutdown()
    assert results == {task: task for task in range(6)}
    assert retried >= 1 and len(made) == 3


def test_joining_a_cluster_ships_this_projects_packages_and_dependencies(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    init_ray("ray://head:10001")
    init_ray("ray://head:10001", ship_code=False)
    shipped = calls[0]["runtime_env"]
    assert [Path(folder).name for folder in shipped["py_modules"]] == ["envs", "rollouts", "worldmodels", "agents"]
    assert all(Path(folder).is_dir() for folder in shipped["py_modules"])
    assert "numpy>=1.26" in shipped["pip"]
    assert not [line for line in shipped["pip"] if line.startswith("ray") or "pytest" in line]
    assert calls[1]["runtime_env"] is None


def test_a_stalled_pool_is_reported_as_a_task_failure_so_callers_wrapping_those_report_it():
    assert issubclass(PoolStalledError, TaskFailedError) and issubclass(PoolStalledError, RuntimeError)


def test_the_pool_refuses_a_stall_time_that_is_not_positive():
    with pytest.raises(ValueError, match="must be > 0 seconds"):
        ReplacingActorPool(lambda: None, 1, stall_warning_s=0.0)


def test_waiting_stops_with_a_clear_error_when_no_ray_node_is_alive(monkeypatch):
    monkeypatch.setattr(actor_pool, "NODE_CHECK_S", 0.01)
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns, timeout: ([], refs))
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": False, "NodeManagerAddress": "127.0.0.1"}])
    with pytest.raises(PoolStalledError, match="no result from 3 Ray actors .* no Ray node is alive"):
        wait_for_first(["ref"], 3, stall_warning_s=300.0, max_stall_s=1800.0)


@pytest.mark.parametrize(("starting", "cause"), [(0, "though all of them started: a task runs longer than 0 s"),
                                                  (1, "(0 CPUs free in the cluster). If the actors ask for more CPUs")])
def test_a_stall_names_long_tasks_once_every_actor_started_and_missing_cpus_before(monkeypatch, caplog, starting,
                                                                                   cause):
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns, timeout: ([], refs))
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "NodeManagerAddress": "127.0.0.1"}])
    monkeypatch.setattr(ray, "available_resources", lambda: {"CPU": 0.0})
    with caplog.at_level(logging.INFO, logger="rollouts.actor_pool"), pytest.raises(PoolStalledError) as stalled:
        wait_for_first(["ref"], 2, stall_warning_s=0.01, max_stall_s=0.05, starting=starting)
    assert "no result from 2 Ray actors in 0 s" in str(stalled.value) and cause in str(stalled.value)
    levels = {record.levelno for record in caplog.records}
    assert levels == ({logging.INFO} if starting == 0 else {logging.WARNING})


def test_a_wait_that_a_pause_stretched_over_several_periods_says_so_once(monkeypatch, caplog):
    # start; a SIGSTOP from 0 s to 1242 s, then four more checks at once (each reads the clock twice); the limit
    clock = itertools.chain([0.0, 0.0, 1242.0, *[1242.0] * 8], itertools.repeat(1801.0))
    monkeypatch.setattr(actor_pool, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns, timeout: ([], refs))
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "NodeManagerAddress": "127.0.0.1"}])
    with caplog.at_level(logging.INFO, logger="rollouts.actor_pool"), pytest.raises(PoolStalledError):
        wait_for_first(["ref"], 2, stall_warning_s=300.0, max_stall_s=1800.0, starting=0)
    assert [record.getMessage() for record in caplog.records] == [
        "2 Ray actors, all started, have run their tasks for 1242 s with no result yet (the pool gives up after 1800 s)"]


def test_waiting_stops_with_a_clear_error_when_the_gcs_cannot_be_asked(monkeypatch):
    def gone() -> list:
        raise ray.exceptions.RaySystemError("GCS unavailable")

    monkeypatch.setattr(ray, "nodes", gone)
    with pytest.raises(PoolStalledError, match="could not ask Ray which nodes are alive .*GCS unavailable"):
        live_node_count()


def test_live_nodes_are_counted(monkeypatch):
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True}, {"Alive": False}, {"Alive": True}])
    assert live_node_count() == 2


def run_python(code: str, timeout: float) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python process (its own Ray); fails the test if it does not finish in time."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True,
                          text=True, timeout=timeout)


LISTENING_SOCKETS = """
    import json, os
    import ray
    try:
        import psutil  # Ray bundles it, on sys.path once ray is imported
    except ImportError:
        print(json.dumps({"skip": "psutil is not importable"}))
        raise SystemExit
    from rollouts.ray_cluster import init_ray

    init_ray(num_cpus=1)

    @ray.remote(num_cpus=1)
    class Probe:
        def pid(self):
            return os.getpid()

    ray.get(Probe.remote().pid.remote())  # an actor and its worker process are up
    listening = []
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            listening += [(proc.name(), conn.laddr.ip) for conn in proc.net_connections("inet")
                          if conn.status == psutil.CONN_LISTEN]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    print(json.dumps({"node_ip": ray.util.get_node_ip_address(), "listening": listening}))
"""


def test_a_local_ray_listens_on_loopback_only():
    result = run_python(LISTENING_SOCKETS, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    if "skip" in found:
        pytest.skip(found["skip"])
    if not found["listening"]:
        pytest.skip("could not see the listening sockets of Ray's processes")
    assert found["node_ip"] == "127.0.0.1"
    names = {name for name, _ in found["listening"]}
    assert {"gcs_server", "raylet"} <= names, found
    assert [(name, ip) for name, ip in found["listening"] if ip not in LOOPBACK_IPS] == []


RAYLET_KILLED_MID_MAP = """
    import threading, time
    import ray
    import psutil  # Ray bundles it, on sys.path once ray is imported
    from rollouts.actor_pool import PoolStalledError, ReplacingActorPool
    from rollouts.ray_cluster import init_ray

    init_ray(num_cpus=1)

    @ray.remote(num_cpus=1, max_restarts=0)
    class Sleeper:
        def ready(self):
            return True

        def work(self, seconds):
            time.sleep(seconds)
            return seconds

    pool = ReplacingActorPool(Sleeper.remote, 1)  # the default stall times: 300 s to warn, 1800 s to give up
    ray.get(pool.actors[0].ready.remote())
    raylet, = [proc for proc in psutil.Process().children() if proc.name() == "raylet"]
    threading.Timer(1.0, raylet.kill).start()
    start = time.monotonic()
    try:
        pool.map([600.0], lambda actor, seconds: actor.work.remote(seconds), lambda task, value: None)
    except PoolStalledError as err:
        print(f"PoolStalledError after {time.monotonic() - start:.0f} s: {err}")
"""


@pytest.mark.slow
def test_a_pool_whose_raylet_is_killed_raises_a_clear_error_instead_of_hanging():
    result = run_python(RAYLET_KILLED_MID_MAP, timeout=240)
    assert "PoolStalledError after" in result.stdout, result.stdout + result.stderr
    assert "no Ray node is alive" in result.stdout  # found by the node check, not the subprocess timeout


def test_the_configured_patience_reaches_the_pool_and_the_error_names_the_setting(local_ray, tmp_path, capsys):
    assert load_config("doom-tiny").ray.max_stall_s == DEFAULT_MAX_STALL_S
    out = tmp_path / "episodes"  # 10 ms is far less than any actor takes to start and make its env
    assert main(["collect", "--preset", "doom-tiny", "--set", "ray.max_stall_s=0.01", "--out", str(out)]) == 1
    # Ray's log monitor may forward its own lines to stderr at any moment: pick out the CLI's error line.
    (line,) = [text for text in capsys.readouterr().err.splitlines() if text.startswith("worldmodels collect: error:")]
    assert line.startswith("worldmodels collect: error: no result from ")
    assert "--set ray.max_stall_s=SECONDS" in line
