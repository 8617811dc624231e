"""The CLI's one error handler: bad invocations end in one ``error:`` line, no traceback, and a light ``--help``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.error_handler import DEBUG_ENV, ErrorHandlingGroup, describe
from tests.conftest import png_bytes

PROJECT = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused at once
S3_DOWN = {
    "CANVASCRAFT_S3_ENDPOINT_URL": UNREACHABLE,
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "CANVASCRAFT_S3_MAX_ATTEMPTS": "1",
}  # one attempt: botocore's retry policy is not what is tested here

# id, arguments ({tmp} is a per-module temp folder), extra env, exit code, words stderr must hold, words it must not
CASES: list[tuple[str, list[str], dict[str, str], int, list[str], list[str]]] = [
    ("ingest-not-a-uri", ["ingest", "not-a-uri"], {}, 1, ["source", "not-a-uri", "s3://"], []),
    (
        "ingest-s3-down",
        ["ingest", "s3://bucket/p"],
        S3_DOWN,
        1,
        ["cannot connect to S3", UNREACHABLE, "canvascraft stack up", "CANVASCRAFT_S3_ENDPOINT_URL"],
        [],
    ),
    (
        "seed-s3-down",
        ["data", "seed", "--from-dir", "{tmp}/images", "--dest", "s3://bucket/p"],
        {**S3_DOWN, "CANVASCRAFT_S3_ENDPOINT_URL": "http://user:hunter2-secret@127.0.0.1:9"},
        1,
        ["cannot connect to S3", "http://user:****@127.0.0.1:9"],
        ["hunter2-secret"],
    ),
    (
        "rollback-no-model",
        ["models", "rollback", "no-such-model"],
        {},
        1,
        ["no registered model 'no-such-model'", "allowed values"],
        ["@previous"],
    ),
    ("list-no-model", ["models", "list", "no-such-model"], {}, 1, ["no registered model 'no-such-model'"], []),
    ("spec-missing", ["spec", "validate", "missing.yaml"], {}, 1, ["missing.yaml", "does not exist"], []),
    (
        "spec-bad-literal",
        ["spec", "validate", "{tmp}/bad.yaml"],
        {},
        1,
        ["data.allowed_formats[1]", "'TIFF'", "'XCF'"],
        [],
    ),
    ("unknown-command", ["no-such-command"], {}, 2, ["No such command 'no-such-command'", "--help"], []),
]


def _env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    """The test's environment without any developer S3/MLflow/Prefect settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CANVASCRAFT_", "MLFLOW_", "AWS_", "PREFECT_API_URL", DEBUG_ENV))
    }
    env.update(
        {
            "CANVASCRAFT_HOME": str(home),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            **extra,
        }
    )
    return env


@pytest.fixture(scope="module")
def bad_invocations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case run once as ``python -m cli.main ...``, all started together (each pays its own imports)."""
    tmp = tmp_path_factory.mktemp("cli-errors")
    (tmp / "images").mkdir()
    (tmp / "images" / "one.png").write_bytes(png_bytes())
    (tmp / "bad.yaml").write_text("name: x\ndata: {source: 's3://bkt/p', allowed_formats: [PNG, XCF]}\n")
    running = {}
    for case_id, args, extra, *_ in CASES:
        home = tmp / f"home-{case_id}"
        argv = [a.replace("{tmp}", str(tmp)) for a in args]
        running[case_id] = (
            argv,
            subprocess.Popen(
                [sys.executable, "-m", "cli.main", *argv],
                cwd=PROJECT,
                env=_env(home, extra),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    done = {}
    for case_id, (argv, process) in running.items():
        stdout, stderr = process.communicate(timeout=300)
        done[case_id] = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    return done


@pytest.mark.parametrize(
    ("case_id", "code", "words", "absent"), [(c[0], c[3], c[4], c[5]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_invocation_prints_one_error_line(
    bad_invocations: dict[str, Any], case_id: str, code: int, words: list[str], absent: list[str]
) -> None:
    result = bad_invocations[case_id]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0]
    for word in absent:
        assert word not in result.stderr + result.stdout


def test_help_and_argument_errors_import_no_heavy_library(tmp_path: Path) -> None:
    probe = (
        "import json, sys\n"
        "from cli.main import main\n"
        "codes = [main(['--help']), main(['models', '--help']), main(['models', 'list']),\n"
        "         main(['fid', 'a', 'b', '--dims', 'many'])]\n"
        "heavy = ('torch', 'mlflow', 'ray', 'feast', 'prefect', 'boto3')\n"
        "print(json.dumps({'codes': codes, 'loaded': [m for m in heavy if m in sys.modules]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT,
        env=_env(tmp_path, {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0, 0, 2, 2], "loaded": []}
    assert "Usage" in done.stdout and "Missing argument 'name'" in done.stderr and "'--dims'" in done.stderr


def _failing_app(exc: Exception) -> typer.Typer:
    """A two-command app under the real handler whose ``boom`` command raises ``exc``."""
    app = typer.Typer(cls=ErrorHandlingGroup, pretty_exceptions_enable=False)

    @app.command("boom")
    def boom() -> None:
        raise exc

    @app.command("fine")
    def fine() -> None:
        raise typer.Exit(code=3)

    return app


def test_unknown_error_names_its_type_and_debug_reraises(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _failing_app(KeyError("spline"))
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    result = CliRunner().invoke(app, ["boom"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith("error: KeyError: 'spline'") and f"{DEBUG_ENV}=1" in result.output
    assert CliRunner().invoke(app, ["fine"]).exit_code == 3  # typer.Exit passes through with its own code
    monkeypatch.setenv(DEBUG_ENV, "1")
    debug = CliRunner().invoke(app, ["boom"])
    assert isinstance(debug.exception, KeyError) and debug.output.startswith("error: KeyError")


def test_describe_credentials_validation_and_multiline_domain_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError, NoCredentialsError
    from pydantic import ValidationError

    from canvascraft.errors import SpecError, StorageError
    from canvascraft.settings import Settings

    monkeypatch.setenv("CANVASCRAFT_S3_ENDPOINT_URL", "http://minio.example:9000")
    assert describe(NoCredentialsError()).startswith("no S3 credentials for http://minio.example:9000")
    denied = ClientError({"Error": {"Code": "InvalidAccessKeyId", "Message": "no such key"}}, "ListObjectsV2")
    try:
        raise StorageError("download of s3://b/k failed after retries") from denied
    except StorageError as wrapped:  # the credential failure under the domain error is what the user must fix
        message = describe(wrapped)
    assert (
        message.startswith(
            "S3 at http://minio.example:9000 refused the credentials (InvalidAccessKeyId on ListObjectsV2)"
        )
        and "AWS_ACCESS_KEY_ID" in message
    )
    not_found = ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
    assert "credentials" not in describe(not_found) and "NoSuchKey" in describe(not_found)

    monkeypatch.setenv("CANVASCRAFT_S3_MAX_ATTEMPTS", "99")
    with pytest.raises(ValidationError) as invalid:
        Settings()
    assert describe(invalid.value) == (
        "invalid settings: CANVASCRAFT_S3_MAX_ATTEMPTS: Input should be less than or equal to 20 (got '99')"
    )
    assert describe(SpecError("spec s.yaml is invalid:\n  seed: bad\n  trainer: unknown")) == (
        "spec s.yaml is invalid: seed: bad; trainer: unknown"
    )


def test_describe_mlflow_connection_failure_masks_the_password() -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri("http://ops:s3cret@127.0.0.1:9")
    try:
        # the message mlflow.utils.rest_utils.http_request raises once requests gave up connecting (building the
        # real one imports every MLflow request-header plugin, Feast's included: ~10 s)
        failure = MlflowException(
            "API request to http://127.0.0.1:9/api/2.0/mlflow/registered-models/get failed "
            "with exception HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded "
            "(Caused by NewConnectionError(...: [Errno 111] Connection refused))"
        )
        message = describe(failure)
    finally:
        mlflow.set_tracking_uri(previous)
    assert message == (
        "cannot connect to MLflow at http://ops:****@127.0.0.1:9 (connection refused); start it with "
        "`canvascraft stack up` or set CANVASCRAFT_MLFLOW_TRACKING_URI"
    )
