"""The ``canvascraft`` console script: --help everywhere, spec validation, ingest --json, config show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canvascraft.datasets import seed_dataset
from cli.main import app

runner = CliRunner()
COMMANDS = [
    [],
    ["config"],
    ["config", "show"],
    ["spec"],
    ["spec", "validate"],
    ["stack"],
    ["stack", "up"],
    ["stack", "down"],
    ["stack", "status"],
    ["stack", "env"],
    ["data"],
    ["data", "seed"],
    ["ingest"],
    ["features"],
    ["features", "get"],
    ["fid"],
    ["models"],
    ["models", "list"],
    ["models", "rollback"],
    ["models", "promote"],
    ["models", "generate"],
    ["drift"],
    ["drift", "check"],
    ["deploy"],
]


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
    assert report["quarantined"] == [
        {"key": "digits/junk.bin", "uri": f"s3://{bucket}/digits/junk.bin", "reason": "not a decodable image"}
    ]


def test_config_show_masks_secrets(s3_settings) -> None:
    result = runner.invoke(app, ["config", "show", "--json"])
    shown = json.loads(result.stdout)
    secret = s3_settings.embedded_s3["secret_access_key"]
    assert result.exit_code == 0 and secret not in result.stdout and shown["s3_credentials"]["source"] == "embedded"


def test_fid_json_between_two_folders(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder, shift in (("a", 0), ("b", 60)):
        (tmp_path / folder).mkdir()
        for i in range(12):
            pixels = np.clip(rng.normal(100 + shift, 30, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"{i}.png")
    result = runner.invoke(app, ["fid", str(tmp_path / "a"), str(tmp_path / "b"), "--dims", "64", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"fid", "kid_mean", "kid_std", "n", "dims", "weights_sha256"} <= set(data)
    assert data["n"] == 12 and data["dims"] == 64 and data["fid"] > 0
    same_set = ["fid", str(tmp_path / "a"), str(tmp_path / "a"), "--dims", "64", "--json"]
    same = json.loads(runner.invoke(app, same_set).stdout)
    assert same["fid"] < 1e-6 < data["fid"]


def test_fid_rejects_bad_dims(tmp_path: Path) -> None:
    result = runner.invoke(app, ["fid", str(tmp_path), str(tmp_path), "--dims", "100"])
    assert result.exit_code == 1 and "64, 192, 768, 2048" in result.output
