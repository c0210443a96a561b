"""Presets load, overrides apply, bad keys and values are refused with the key named; the schema documents every
key, ``worldmodels config --help`` lists them, and each choice is defined once."""

import ast
import dataclasses
import inspect
import typing

import pytest

from rollouts import policy_names
from worldmodels import config_schema, controller, dream
from worldmodels.cli import main
from worldmodels.components import cyclegan
from worldmodels.config import ConfigError, available_presets, load_config, save_config
from worldmodels.config_help import attribute_docs, yaml_text
from worldmodels.config_schema import Config


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


def schema_sections() -> dict[str, type]:
    """Every section of the schema by its key ("" for Config itself, whose own keys are the top-level ones)."""
    hints = typing.get_type_hints(Config)
    sections = {f.name: hints[f.name] for f in dataclasses.fields(Config) if dataclasses.is_dataclass(hints[f.name])}
    return {"": Config, **sections}


def leaf_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` holding values (not sections)."""
    hints = typing.get_type_hints(cls)
    return [f for f in dataclasses.fields(cls) if not dataclasses.is_dataclass(hints[f.name])]


def test_every_schema_field_and_section_has_a_docstring():
    docs = attribute_docs(config_schema)
    classes = {node.name: node for node in ast.parse(inspect.getsource(config_schema)).body
               if isinstance(node, ast.ClassDef)}
    missing = [f"{cls.__name__}.{f.name}" for cls in schema_sections().values() for f in leaf_fields(cls)
               if not docs[cls.__name__].get(f.name)]
    assert not missing, f"schema fields without a docstring (add one below each): {missing}"
    assert all(ast.get_docstring(classes[cls.__name__]) for cls in schema_sections().values())
    assert docs["VAEConfig"]["z_size"] == "Latent size (32 CarRacing, 64 Doom)."


def test_config_help_lists_every_key_with_its_type_default_and_docstring(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["config", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # the reference is wrapped to the terminal's width
    docs = attribute_docs(config_schema)
    for section, cls in schema_sections().items():
        for info in leaf_fields(cls):
            key = f"{section}.{info.name}" if section else info.name
            default = info.default_factory() if info.default is dataclasses.MISSING else info.default
            doc = " ".join(docs[cls.__name__][info.name].split())
            assert f" {key} (" in text and f"; default: {yaml_text(default)}) {doc}" in text, key
    assert " collect.policy (one of uniform, brownian, random_controller, repeated_random; default: " in text
    assert " vae.batch_size (int > 0; default: 100) " in text
    assert " collect.num_workers (int > 0 or null; default: null) " in text


def test_each_literal_choice_is_defined_once():
    assert dream.REWARD_MODES == typing.get_args(config_schema.DreamRewardName)
    assert dream.DONE_MODES == typing.get_args(config_schema.DreamDoneName)
    assert tuple(dream.PRECISION_DTYPES) == typing.get_args(config_schema.DtypeName)
    assert typing.get_args(config_schema.PrecisionName) == ("auto", *typing.get_args(config_schema.DtypeName))
    assert controller.CONTROLLER_INPUTS == typing.get_args(config_schema.ControllerInputsName)
    assert cyclegan.GENERATOR_NAMES == typing.get_args(config_schema.CycleGANGeneratorName)
    assert policy_names.POLICY_NAMES == typing.get_args(policy_names.DataPolicyName)
    assert config_schema.DataPolicyName is policy_names.DataPolicyName
    schema = {name: typing.get_type_hints(cls) for name, cls in schema_sections().items()}
    settings = typing.get_type_hints(dream.DreamSettings)
    assert schema["collect"]["policy"] is policy_names.DataPolicyName
    for name, section in (("reward_mode", "dream"), ("done_mode", "dream"), ("precision", "dream"),
                          ("ensemble", "dream"), ("inputs", "controller")):
        assert settings[name] is schema[section][name], name


def test_dream_settings_name_the_keys_they_take_from_a_config():
    """DreamSettings documents a field taken from the config by naming its key; settings_from_config copies it."""
    overrides = ["dream.temperature=1.3", "dream.precision=bfloat16", "dream.reward_mode=survival",
                 "dream.dropout_mask=true", "dream.ensemble=pessimistic", "dream.disagreement_limit=0.5",
                 "controller.bias=false"]
    config = load_config("carracing-tiny", overrides)
    settings = dream.settings_from_config(config)
    keys = {name: doc.split("``")[1] for name, doc in attribute_docs(dream)["DreamSettings"].items()
            if doc.startswith("``")}
    assert set(keys) == {"temperature", "max_steps", "reward_mode", "done_mode", "inputs", "bias", "hidden_units",
                         "precision", "dropout_mask", "ensemble", "disagreement_limit"}
    for name, key in keys.items():
        section, field_name = key.split(".")
        assert field_name == name
        value = getattr(getattr(config, section), name)
        assert getattr(settings, name) == (dream.dream_max_steps(config) if value is None else value), key
