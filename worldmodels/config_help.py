"""The configuration reference, generated from the schema: every key with its type, default and docstring.

``worldmodels config --help`` ends with it. The docstrings are the attribute docstrings of
:mod:`worldmodels.config_schema` (the string below each field), read from its source with :mod:`ast`, so the schema
is their one home.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from itertools import pairwise
from typing import Any, Literal, NamedTuple

import yaml

from worldmodels import config_schema
from worldmodels.config_schema import Config


class KeyDoc(NamedTuple):
    """One configuration key as the reference lists it."""

    key: str
    """"section.key" ("key" for the top-level keys)."""
    type: str
    """The values allowed, e.g. "int > 0 or null", "one of head, survival"."""
    default: str
    """The schema's default as YAML (a preset may change it)."""
    doc: str
    """The field's docstring on one line ("" when it has none)."""


class SectionDoc(NamedTuple):
    """One section of the configuration (its dataclass) and its keys."""

    name: str
    """The section's key ("" for the top-level keys)."""
    doc: str
    """The section class's docstring on one line."""
    keys: list[KeyDoc]


def attribute_docs(module: types.ModuleType) -> dict[str, dict[str, str]]:
    """The attribute docstrings in ``module``'s source: {class name: {field name: docstring}} for every class at
    its top level (a string statement right after an annotated assignment documents that field)."""
    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.ClassDef):
            docs[node.name] = dict(filter(None, (_field_doc(*pair) for pair in pairwise(node.body))))
    return docs


def _field_doc(statement: ast.stmt, following: ast.stmt) -> tuple[str, str] | None:
    """(field name, docstring) when ``statement`` declares a field and ``following`` is a string, else None."""
    if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
        return None
    if not (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)):
        return None
    return statement.target.id, inspect.cleandoc(following.value.value)


def yaml_text(value: Any) -> str:
    """``value`` as YAML on one line, as ``--set`` reads it: null, true, 0.0001, auto, {}."""
    return yaml.safe_dump(value, default_flow_style=True, width=2**16).strip().removesuffix("...").strip()


def type_text(hint: Any, bound: tuple[float, bool] | None = None) -> str:
    """The values a field of type ``hint`` takes, in words, with its bound (limit, inclusive) if any."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(yaml_text(choice) for choice in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        return " or ".join("null" if option is type(None) else type_text(option, bound) for option in options)
    if origin is dict:
        return "mapping"
    if bound is None:
        return hint.__name__
    limit, inclusive = bound
    return f"{hint.__name__} {'>=' if inclusive else '>'} {limit}"


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def config_sections(root: type = Config) -> list[SectionDoc]:
    """The keys of ``root`` (the top-level ones first, as section ""), then of each section dataclass, in the
    schema's order."""
    docs = attribute_docs(config_schema)
    hints = typing.get_type_hints(root)
    top = SectionDoc("", _one_line(root.__doc__), [])
    sections = [top]
    for info in dataclasses.fields(root):
        hint = hints[info.name]
        if dataclasses.is_dataclass(hint):
            sections.append(SectionDoc(info.name, _one_line(hint.__doc__), _keys(hint, f"{info.name}.", docs)))
        else:
            top.keys.append(_key(info, hint, info.name, docs[root.__name__]))
    return sections


def _keys(cls: type, prefix: str, docs: dict[str, dict[str, str]]) -> list[KeyDoc]:
    hints = typing.get_type_hints(cls)
    return [_key(info, hints[info.name], prefix + info.name, docs[cls.__name__]) for info in dataclasses.fields(cls)]


def _key(info: dataclasses.Field, hint: Any, key: str, docs: dict[str, str]) -> KeyDoc:
    default = info.default_factory() if info.default is dataclasses.MISSING else info.default
    return KeyDoc(key, type_text(hint, info.metadata.get("bound")), yaml_text(default), _one_line(docs.get(info.name)))


def config_reference(width: int = 100) -> str:
    """Every key of the configuration, section by section: ``key (type; default: value)`` and its docstring, in lines
    of at most ``width`` characters (longer where a word is)."""
    intro = ("configuration keys (--set KEY=VALUE, the value read as YAML). The defaults are the schema's; a preset "
             "changes some (worldmodels config --preset NAME prints its values).")
    lines = [_fill(width, intro, "", "")]
    for section in config_sections():
        lines += ["", _fill(width, f"{section.name or 'top level'}: {section.doc}", "", "  ")]
        for key in section.keys:
            lines += [_fill(width, f"{key.key} ({key.type}; default: {key.default})", "  ", "      "),
                      _fill(width, key.doc, "      ", "      ")]
    return "\n".join(lines)


def _fill(width: int, text: str, first: str, rest: str) -> str:
    return textwrap.fill(text, width, initial_indent=first, subsequent_indent=rest, break_long_words=False,
                         break_on_hyphens=False)
