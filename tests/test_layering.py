"""The package dependency direction of DESIGN.md: agents -> worldmodels -> rollouts -> envs, never back.

The one exception is the dream env, which lives in envs/ but is built from worldmodels' models.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["envs", "rollouts", "worldmodels", "agents"]  # a package may import only those before it
EXCEPTIONS = {("envs/dream_env.py", "worldmodels"), ("envs/dream_env.py", "rollouts")}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ORDER)
def test_imports_point_one_way(package):
    forbidden = set(ORDER[ORDER.index(package) + 1:])
    offences = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        offences += [f"{relative} imports {name}" for name in sorted(imported_packages(path) & forbidden)
                     if (relative, name) not in EXCEPTIONS]
    assert not offences, "; ".join(offences)


def test_worldmodels_core_does_not_import_stable_baselines3():
    offences = [path.relative_to(ROOT).as_posix() for path in sorted((ROOT / "worldmodels").rglob("*.py"))
                if "stable_baselines3" in imported_packages(path) and "components" not in path.parts]
    assert not offences
