"""The layout DEVELOPERS.md requires, and the one-way import direction flows -> tasks -> canvascraft."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_roots(folder: Path) -> dict[str, set[str]]:
    """Top-level module names imported by every .py file under ``folder`` (static AST scan)."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        roots: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = roots
    return found


@pytest.mark.parametrize("name", ["flows", "tasks", "feature_repo", "deployments", "infra", "tests", "canvascraft"])
def test_required_folders_exist(name: str) -> None:
    assert (ROOT / name).is_dir()


@pytest.mark.parametrize(
    "name", ["prefect.yaml", "pyproject.toml", "README.md", "Makefile", ".ci/run", "docs/architecture.md"]
)
def test_required_files_exist(name: str) -> None:
    assert (ROOT / name).is_file()


def test_core_never_imports_prefect_tasks_or_flows() -> None:
    offenders = {f: r & {"prefect", "tasks", "flows", "cli"} for f, r in imported_roots(ROOT / "canvascraft").items()}
    assert {f: r for f, r in offenders.items() if r} == {}


def test_tasks_never_import_flows() -> None:
    offenders = {f: r & {"flows", "cli"} for f, r in imported_roots(ROOT / "tasks").items()}
    assert {f: r for f, r in offenders.items() if r} == {}


def test_feature_repo_imports_only_feast_and_core() -> None:
    import sys

    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    allowed = {"feast", "canvascraft"} | stdlib
    offenders = {f: r - allowed for f, r in imported_roots(ROOT / "feature_repo").items()}
    assert {f: r for f, r in offenders.items() if r} == {}


def test_no_module_shadows_a_library() -> None:
    shadowing = {"prefect", "mlflow", "feast", "ray", "torch", "evidently", "diffusers", "boto3", "optuna"}
    names = {p.stem for d in ("flows", "tasks") for p in (ROOT / d).glob("*.py")}
    assert names & shadowing == set()
