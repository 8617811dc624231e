"""No secret is committed under infra/: infra/.env stays ignored, the env example and the Secret example hold
placeholders only, and a scan of every committed infra file finds no literal password, token or key."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.infra.infra_files import (
    COMPOSE_PATH,
    ENV_EXAMPLE,
    ENV_REF,
    FLAG_SECRET,
    INFRA,
    PLACEHOLDER,
    ROOT,
    SECRET_NAME,
    URL_CREDENTIALS,
    WORKER_POLICY,
    committed_infra_files,
    env_example,
    is_env_ref,
    secret_example,
)
from tests.test_infra import walk


def test_gitignore_covers_infra_env_but_not_the_example() -> None:
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", "infra/.env"], cwd=ROOT, check=False)
    example = subprocess.run(["git", "check-ignore", "--no-index", "-q", "infra/.env.example"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, "infra/.env is not in .gitignore"
    assert example.returncode == 1, "infra/.env.example must stay committed"


def test_env_example_names_every_required_variable_with_placeholders_only() -> None:
    text = COMPOSE_PATH.read_text()
    required = {m["name"] for m in ENV_REF.finditer(text) if m.group(0).startswith("${" + m["name"] + ":?")}
    example = env_example()
    assert required - set(example) == set(), "compose requires variables infra/.env.example does not name"
    for key, value in example.items():
        if SECRET_NAME.fullmatch(key):
            assert PLACEHOLDER in value, f"infra/.env.example {key}={value!r}: use a {PLACEHOLDER} placeholder"
    user, _, password = example["PREFECT_API_AUTH_STRING"].partition(":")
    assert user and PLACEHOLDER in password, "PREFECT_API_AUTH_STRING is user:password"


def secret_literals(path: Path) -> list[str]:
    """Secret-looking literal values in one committed infra file (empty: none)."""
    text = path.read_text()
    found = [
        f"credentials in a URL: {m.group(0)}"
        for m in URL_CREDENTIALS.finditer(text)
        if not ENV_REF.fullmatch(m["password"]) and PLACEHOLDER not in m["password"]
    ]
    found += [
        f"literal flag value: {m.group(0)}"
        for m in FLAG_SECRET.finditer(text)
        if not m["value"].lstrip("\\\"'").startswith("$")
    ]
    pairs: list[tuple[Any, Any]] = []
    if path.suffix in (".yml", ".yaml"):
        pairs = [pair for doc in yaml.safe_load_all(text) for pair in walk(doc)]
    elif path.suffix == ".json":
        pairs = list(walk(json.loads(text)))
    elif path.suffix == ".ini":
        parser = configparser.ConfigParser()
        parser.read_string(text)
        pairs = [(key, value) for section in parser.sections() for key, value in parser[section].items()]
    elif path.suffix in (".sh", ".py", ".example") or path.name == "Dockerfile":
        pairs = [
            tuple(part.strip() for part in m.groups())
            for m in re.finditer(r"^\s*(?:export\s+|ENV\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", text, re.MULTILINE)
        ]
    secret = secret_example()
    references = {secret["metadata"]["name"], *secret["stringData"]}  # naming the Secret or a key of it is fine
    for key, value in pairs:
        if not isinstance(key, str) or not SECRET_NAME.fullmatch(key) or not isinstance(value, (str, int)):
            continue
        value = str(value).strip().strip("\"'")
        if value and not is_env_ref(value) and PLACEHOLDER not in value and value not in references:
            found.append(f"{key}: {value}")
    return found


def test_no_secret_literal_in_any_committed_infra_file() -> None:
    files = committed_infra_files()
    assert COMPOSE_PATH in files and ENV_EXAMPLE in files and WORKER_POLICY in files
    assert INFRA / ".env" not in files
    problems = {str(path.relative_to(ROOT)): found for path in files if (found := secret_literals(path))}
    assert problems == {}


def test_secret_literal_scan_finds_literals(tmp_path: Path) -> None:
    """The scan flags each kind of literal it looks for (so the rule above can fail)."""
    cases = {
        "compose.yml": "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: hunter2\n",
        "url.yml": "x: postgresql://mlflow:hunter2@db:5432/mlflow\n",
        "env.yaml": "env:\n  - name: PREFECT_API_AUTH_STRING\n    value: admin:hunter2\n",
        "redis.yml": "command: redis-server --requirepass hunter2\n",
        "auth.ini": "[mlflow]\nadmin_password = hunter2\n",
        "x.example": "RAY_AUTH_TOKEN=hunter2\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert secret_literals(tmp_path / name), name
    (tmp_path / "ok.yml").write_text("a:\n  POSTGRES_PASSWORD: ${PG_PASSWORD:?set}\n  u: redis://:${P:?x y/z}@r:1/0\n")
    assert secret_literals(tmp_path / "ok.yml") == []
