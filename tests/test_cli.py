"""The ``canvascraft`` console script: --help everywhere, spec validation, ingest --json, config show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canvascraft.cli import app
from canvascraft.datasets import seed_dataset

runner = CliRunner()
COMMANDS = [[], ["config"], ["config", "show"], ["spec"], ["spec", "validate"], ["stack"], ["stack", "up"],
            ["stack", "down"], ["stack", "status"], ["data"], ["data", "seed"], ["ingest"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help_on_every_command(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_spec_validate_reports_field_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {source: 's3://bkt/p'}\nbrushes: [{name: watercolor, params: {radius: 99}}]\n")
    result = runner.invoke(app, ["spec", "validate", str(bad)])
    assert result.exit_code == 1 and "brushes[0].params.radius" in result.output
    good = runner.invoke(app, ["spec", "validate", "pipelines/digits-quick.yaml"])
    assert good.exit_code == 0 and "valid" in good.output


def test_ingest_json(s3_settings, s3_client, bucket: str) -> None:
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=12)
    s3_client.put_object(Bucket=bucket, Key="digits/junk.bin", Body=b"\x00\x01")
    result = runner.invoke(app, ["ingest", f"s3://{bucket}/digits", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] == 12 and len(report["dataset_version"]) == 16
    assert report["quarantined"] == [{"key": "digits/junk.bin", "uri": f"s3://{bucket}/digits/junk.bin",
                                      "reason": "not a decodable image"}]


def test_config_show_masks_secrets(s3_settings) -> None:
    result = runner.invoke(app, ["config", "show", "--json"])
    shown = json.loads(result.stdout)
    secret = s3_settings.embedded_s3["secret_access_key"]
    assert result.exit_code == 0 and secret not in result.stdout and shown["s3_credentials"]["source"] == "embedded"
