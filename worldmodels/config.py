"""Loading a run's configuration: YAML presets shipped in the package, saved files, dotted overrides, checked.

A configuration (:class:`worldmodels.config_schema.Config`) is built in order (DreamerV3 style): dataclass defaults,
then a preset (which may name a ``base`` preset it refines), then ``--set section.key=value`` overrides. Every value
is checked against the field's type and bound; an unknown key or a value of the wrong type raises
:class:`ConfigError` naming the key. The merged configuration is saved beside every run's outputs
(:func:`save_config`).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from rollouts.atomic import atomic_write_text
from worldmodels.config_schema import Config


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names the key and what is allowed."""


def available_presets() -> list[str]:
    """Names of the presets shipped in ``worldmodels/presets``."""
    folder = resources.files("worldmodels") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_preset(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The preset's values merged over its ``base`` chain, as a nested dict."""
    if name in seen:
        raise ConfigError(f"preset '{name}' has a circular base chain: {' -> '.join((*seen, name))}")
    if name not in available_presets():
        raise ConfigError(f"unknown preset '{name}'; available presets: {', '.join(available_presets())}")
    text = (resources.files("worldmodels") / "presets" / f"{name}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    base = data.pop("base", None)
    merged = _read_preset(base, (*seen, name)) if base else {}
    _merge(merged, data)
    merged["preset"] = name
    return merged


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    """Recursively merge ``update`` into ``into`` (dicts merge, everything else replaces)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _check_value(value: Any, hint: Any, key: str) -> Any:
    """Return ``value`` converted to ``hint`` (int and numeric text widen to float) or raise ConfigError."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(c) for c in typing.get_args(hint))
            raise ConfigError(f"config key '{key}' must be one of {choices}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_value(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{key}' must be {_type_name(hint)}, got {value!r}")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # PyYAML reads "1e-4" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"config key '{key}' must be {hint.__name__}, got {value!r}")
        return value
    raise ConfigError(f"config key '{key}' has a type this loader does not know: {hint}")


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys and mistyped values."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or 'root'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    field_info = {f.name: f for f in dataclasses.fields(cls)}
    names = list(field_info)
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{prefix}{key}'{hint}; keys here: {', '.join(names)}")
    values = {}
    for name in names:
        if name not in data:
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, data[name], f"{prefix}{name}.")
        else:
            values[name] = _check_value(data[name], hint, f"{prefix}{name}")
            _check_bound(values[name], field_info[name], f"{prefix}{name}")
    return cls(**values)


def _check_bound(value: Any, info: dataclasses.Field, key: str) -> None:
    bound = info.metadata.get("bound")
    if bound is None or value is None:
        return
    limit, inclusive = bound
    if value < limit or (value == limit and not inclusive):
        raise ConfigError(f"config key '{key}' must be {'>=' if inclusive else '>'} {limit}, got {value!r}")


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``'section.key=value'``; the value is read as YAML (``16``, ``true``, ``null``, ``[1, 2]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' must look like section.key=value, e.g. vae.z_size=16")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': the value is not valid YAML ({err})") from None
    return key.strip(), value


def _apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    *sections, leaf = key.split(".")
    node = data
    for depth, section in enumerate(sections):
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key '{'.'.join(sections[: depth + 1])}' is a value, not a section")
        node = child
    node[leaf] = value


def load_config(
    preset: str | None = "carracing",
    overrides: list[str] | None = None,
    file: str | Path | None = None,
) -> Config:
    """Build a :class:`Config` from a preset or a saved YAML file, then dotted overrides.

    :param preset: a shipped preset name (see :func:`available_presets`); ignored when ``file`` is given.
    :param overrides: ``section.key=value`` strings, applied in order.
    :param file: a YAML file written by :func:`save_config` (or by hand, in the same shape).
    """
    if file is not None:
        path = Path(file)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections")
        base = data.pop("base", None)
        if base:
            merged = _read_preset(base)
            _merge(merged, data)
            data = merged
    else:
        data = _read_preset(preset or "carracing")
    for text in overrides or []:
        _apply_override(data, *parse_override(text))
    return _read_older_keys(_build(Config, data))


def _read_older_keys(config: Config) -> Config:
    """``config`` with older configs' keys read into their current ones: ``vae.mixed_precision`` true reads as
    ``vae.precision`` auto, false as float32 (then it is null again)."""
    vae = config.vae
    if vae.mixed_precision is not None:
        if vae.precision != "auto":
            raise ConfigError("config keys 'vae.mixed_precision' (older configs) and 'vae.precision' are both "
                              "set; keep vae.precision alone")
        vae.precision = "auto" if vae.mixed_precision else "float32"
        vae.mixed_precision = None
    return config


def config_to_dict(config: Config) -> dict[str, Any]:
    """The configuration as plain nested dicts (YAML/JSON-ready)."""
    return dataclasses.asdict(config)


def save_config(config: Config, path: str | Path) -> None:
    """Write the merged configuration as YAML, atomically; :func:`load_config(file=path)` reads it back."""
    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
