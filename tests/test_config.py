"""Presets load, overrides apply, bad keys and values are refused with the key named."""

import argparse

import numpy as np
import pytest

from worldmodels.commands import run_config
from worldmodels.config import (
    Config,
    ConfigError,
    available_presets,
    load_config,
    save_config,
)


def test_presets_ship_and_load():
    assert {"carracing", "carracing-tiny"} <= set(available_presets())
    for name in available_presets():
        assert isinstance(load_config(name), Config)


def test_paper_defaults_in_carracing_preset():
    config = load_config("carracing")
    assert config.vae.z_size == 32 and config.vae.kl_tolerance == 0.5 and config.vae.batch_size == 100
    assert config.vae.learning_rate == pytest.approx(1e-4)
    assert config.mdnrnn.hidden_size == 256 and config.mdnrnn.num_mixtures == 5
    assert config.collect.episodes == 10_000 and config.collect.policy == "random_controller"


def test_tiny_preset_refines_its_base():
    tiny = load_config("carracing-tiny")
    assert tiny.preset == "carracing-tiny"
    assert tiny.collect.episodes < 10 and tiny.env.max_episode_steps == 100
    assert tiny.vae.z_size == 32  # inherited from the carracing base


def test_overrides_are_typed():
    config = load_config("carracing-tiny", ["vae.z_size=16", "vae.learning_rate=3e-4", "ray.address=null",
                                           "env.options={invert_colors: true}", "mdnrnn.grad_clip=2"])
    assert config.vae.z_size == 16
    assert config.vae.learning_rate == pytest.approx(3e-4)
    assert config.ray.address is None
    assert config.env.options == {"invert_colors": True}
    assert isinstance(config.mdnrnn.grad_clip, float) and config.mdnrnn.grad_clip == 2.0


@pytest.mark.parametrize(
    "override, named",
    [
        ("vae.zsize=16", "vae.zsize"),
        ("nosuch.key=1", "nosuch"),
        ("vae.z_size=abc", "vae.z_size"),
        ("vae.z_size=1.5", "vae.z_size"),
        ("vae.z_size=true", "vae.z_size"),
        ("collect.policy=greedy", "collect.policy"),
        ("device=tpu", "device"),
        ("vae=3", "vae"),
        ("collect.num_workers=two", "collect.num_workers"),
        ("collect.episodes=-1", "collect.episodes"),
        ("vae.batch_size=0", "vae.batch_size"),
        ("vae.learning_rate=0", "vae.learning_rate"),
        ("dream.temperature=-1.0", "dream.temperature"),
        ("collect.num_workers=0", "collect.num_workers"),
        ("cmaes.seed=-1", "cmaes.seed"),
    ],
)
def test_bad_overrides_name_the_key(override, named):
    with pytest.raises(ConfigError, match=f"'{named}'"):
        load_config("carracing-tiny", [override])


def test_malformed_override_and_unknown_preset():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config("carracing", ["vae.z_size"])
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*carracing"):
        load_config("nope")


def test_saved_config_round_trips(tmp_path):
    config = load_config("carracing-tiny", ["vae.z_size=8"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(file=tmp_path / "config.yaml") == config
    assert not list(tmp_path.glob("*.tmp"))


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(file=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("vae: {z_size: [}")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(file=bad)


def test_a_run_holding_a_controller_refuses_a_controller_of_another_shape(tmp_path):
    run = tmp_path / "run"
    args = argparse.Namespace(run=run, config=None, preset="carracing-tiny", set=[])
    run_config(args)  # saves RUN/config.yaml
    (run / "controller").mkdir()
    np.save(run / "controller" / "mean.npy", np.zeros(867, np.float32))
    assert run_config(argparse.Namespace(run=run, config=None, preset=None, set=["cmaes.popsize=8"])).cmaes.popsize == 8
    with pytest.raises(ConfigError, match=r"controller/mean.npy, built with controller.hidden_units=0 \(now 40\)"):
        run_config(argparse.Namespace(run=run, config=None, preset=None, set=["controller.hidden_units=40"]))
