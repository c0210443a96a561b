"""Agent files: export in half precision, unpack into a run folder, the shipped agents, and bad files refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodels.agent_layout import SHIPPED_DIR, shipped_agents
from worldmodels.checkpoint import ModelWeights, save_untrained_checkpoint
from worldmodels.config import load_config, save_config
from worldmodels.controller import load_params
from worldmodels.pretrained import (
    AgentFileError,
    agent_path,
    export_agent,
    read_agent,
    unpack_agent,
)

Z, H = 8, 16


def tiny_run(run: Path) -> np.ndarray:
    """A run folder with untrained V and M of tiny sizes, a doom-tiny config and a controller; returns C."""
    run.mkdir(parents=True, exist_ok=True)
    save_untrained_checkpoint(run / "vae.pt", "vae", {"z_size": Z})
    save_untrained_checkpoint(run / "mdnrnn.pt", "mdnrnn", {"z_size": Z, "action_size": 1, "hidden_size": H,
                                                            "done_head": True})
    save_config(load_config("doom-tiny", [f"vae.z_size={Z}", f"mdnrnn.hidden_size={H}"]), run / "config.yaml")
    params = np.random.default_rng(0).normal(0, 0.3, Z + 2 * H).astype(np.float32)
    (run / "controller").mkdir()
    np.save(run / "controller" / "mean.npy", params)
    return params


def test_export_then_unpack_gives_the_run_in_half_precision(tmp_path):
    params = tiny_run(tmp_path / "run")
    config = load_config(file=tmp_path / "run" / "config.yaml")
    out = export_agent(tmp_path / "run", config, tmp_path / "agent.pt")
    record = read_agent(out)
    assert all(t.dtype == torch.float16 for t in record["vae"]["model"].values() if t.is_floating_point())
    folder = unpack_agent(out, tmp_path / "cache")
    for kind in ("vae", "mdnrnn"):
        original = ModelWeights.read(tmp_path / "run" / f"{kind}.pt", kind)
        unpacked = ModelWeights.read(folder / f"{kind}.pt", kind)
        assert unpacked.model_args == original.model_args
        for key, value in original.model.items():
            assert unpacked.model[key].dtype == value.dtype
            torch.testing.assert_close(unpacked.model[key], value.half().to(value.dtype), rtol=0, atol=0)
    np.testing.assert_array_equal(load_params(folder / "controller" / "mean.npy"), params)
    assert load_config(file=folder / "config.yaml") == config
    assert unpack_agent(out, tmp_path / "cache") == folder  # unpacked once, reused
    np.save(tmp_path / "run" / "controller" / "mean.npy", params + 1)
    other = export_agent(tmp_path / "run", config, tmp_path / "agent.pt")
    assert unpack_agent(other, tmp_path / "cache") != folder  # new bytes, new folder


def test_a_weight_beyond_half_precision_is_refused(tmp_path):
    tiny_run(tmp_path / "run")
    weights = ModelWeights.read(tmp_path / "run" / "vae.pt", "vae")
    model = weights.build()
    with torch.no_grad():
        next(model.parameters())[0].fill_(1e6)
    save_untrained_checkpoint(tmp_path / "run" / "vae.pt", "vae", {"z_size": Z})
    checkpoint = torch.load(tmp_path / "run" / "vae.pt", weights_only=True)
    checkpoint["model"] = model.state_dict()
    torch.save(checkpoint, tmp_path / "run" / "vae.pt")
    with pytest.raises(ValueError, match="exceeds float16's range"):
        export_agent(tmp_path / "run", load_config(file=tmp_path / "run" / "config.yaml"), tmp_path / "agent.pt")
    assert not (tmp_path / "agent.pt").exists()


@pytest.mark.parametrize("damage", ["truncated", "text", "not_an_agent", "bad_weights"])
def test_a_damaged_agent_file_is_refused_in_one_line(tmp_path, damage):
    tiny_run(tmp_path / "run")
    good = export_agent(tmp_path / "run", load_config(file=tmp_path / "run" / "config.yaml"), tmp_path / "good.pt")
    bad = tmp_path / "bad.pt"
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif damage == "text":
        bad.write_text("not a checkpoint")
    elif damage == "not_an_agent":
        torch.save({"format": 1, "weights": torch.zeros(3)}, bad)
    else:
        record = read_agent(good)
        record["mdnrnn"]["model"]["mdn.weight"] = torch.zeros(3, 3)
        torch.save(record, bad)
    with pytest.raises(ValueError) as err:
        unpack_agent(bad, tmp_path / "cache")
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    assert not list((tmp_path / "cache" / "pretrained").glob("bad-*"))  # no half-written run folder left behind
    assert bad.exists()


def test_unknown_names_and_missing_files_name_the_shipped_agents(tmp_path):
    with pytest.raises(AgentFileError, match="no pretrained agent 'nothing'") as err:
        agent_path("nothing")
    for name in shipped_agents():
        assert name in str(err.value)
    with pytest.raises(AgentFileError, match="does not exist"):
        read_agent(tmp_path / "missing.pt")


def test_cli_refuses_a_corrupt_agent_in_one_line(tmp_path):
    bad = tmp_path / "agent.pt"
    bad.write_bytes(b"\x00" * 100)
    result = subprocess.run([sys.executable, "-m", "worldmodels.cli", "evaluate", "--pretrained", str(bad),
                             "--episodes", "1"], capture_output=True, text=True,
                            env={**os.environ, "WORLDMODELS_CACHE": str(tmp_path)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a readable torch checkpoint" in lines[0] and str(bad) in lines[0]


SHIPPED = shipped_agents()
"""Every shipped agent's replay of its evaluation is a test; CarRacing's 1000-step episodes make it a slow one."""
REPLAYS = [pytest.param(name, marks=[pytest.mark.slow] if name.startswith("carracing") else []) for name in SHIPPED]


def shipped_worker(name: str, folder: Path, overrides: list[str], num_envs: int):
    """A real-env worker of a shipped agent's unpacked ``folder`` (VizDoom's engine is imported when needed)."""
    from worldmodels.real_rollouts import RealEnvWorkerSpec

    config = load_config(file=folder / "config.yaml", overrides=overrides)
    if "TakeCover" in config.env.id:
        pytest.importorskip("vizdoom")
    return RealEnvWorkerSpec.for_run(config, folder, num_envs=num_envs)()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_agent_loads_and_plays_in_the_real_env(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ViZDoom writes its engine settings to ./_vizdoom.ini
    folder = unpack_agent(name, tmp_path / "cache")
    worker = shipped_worker(name, folder, ["env.max_episode_steps=30"], num_envs=2)
    try:
        params = load_params(folder / "controller" / "mean.npy", worker.num_params)
        returns = worker.run(np.stack([params, params]), np.array([7, 8]))
    finally:
        worker.close()
    assert returns.shape == (2,) and np.all(np.isfinite(returns))
    if name == "doom":
        assert np.all((returns >= 1) & (returns <= 30))  # +1 per step alive, 30 steps at most


@pytest.mark.parametrize("name", REPLAYS)
def test_every_shipped_agent_replays_its_shipped_evaluation(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = json.loads((SHIPPED_DIR / name / "evaluation.json").read_text())
    assert shipped["episodes"] == len(shipped["returns"]) == 100 and shipped["seeds"][0] == 1_000_000
    folder = unpack_agent(name, tmp_path / "cache")
    worker = shipped_worker(name, folder, [], num_envs=4)
    try:
        params = load_params(folder / "controller" / "mean.npy", worker.num_params)
        returns = worker.run(np.stack([params] * 8), np.array(shipped["seeds"][:8]))
    finally:
        worker.close()
    # the same episodes: equal on the machine that measured them; elsewhere rounding may fork a trajectory (CarRacing
    # forks on a last-bit difference), so the mean of the 8 is held to 4 standard errors of the shipped spread
    assert abs(returns.mean() - np.mean(shipped["returns"][:8])) <= 4 * shipped["std"] / np.sqrt(8)


def test_the_doom_cpu_10k_preset_is_the_shipped_doom_agents_recipe(tmp_path):
    """One command remakes the shipped agent's recipe: its config differs only in the preset's name, in what the
    export set for any CPU (float32 dreams, one M) and in the envs a worker steps at once (speed, never a return)."""
    (tmp_path / "config.yaml").write_text(read_agent(agent_path("doom"))["config"])
    shipped = load_config(file=tmp_path / "config.yaml")
    preset = load_config("doom-cpu-10k", ["dream.precision=float32", "dream.members=1"])
    assert (shipped.preset, preset.preset) == ("doom-cpu", "doom-cpu-10k")
    preset.preset = shipped.preset
    preset.cmaes.envs_per_worker = shipped.cmaes.envs_per_worker
    assert preset == shipped
