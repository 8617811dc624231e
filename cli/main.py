"""The ``canvascraft`` command line (typer). Commands call the pure core; flows are run with ``python -m flows...``."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from canvascraft.errors import CanvasCraftError
from canvascraft.settings import get_settings

app = typer.Typer(help="CanvasCraft: train generative image models as Prefect workflows.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
spec_app = typer.Typer(help="Pipeline specs.", no_args_is_help=True)
stack_app = typer.Typer(help="The embedded local stack: S3, Pushgateway, MLflow, Prefect server and worker.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets in S3.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(spec_app, name="spec")
app.add_typer(stack_app, name="stack")
app.add_typer(data_app, name="data")
features_app = typer.Typer(help="Feature palettes served by Feast.", no_args_is_help=True)
app.add_typer(features_app, name="features")
models_app = typer.Typer(help="Registered models in MLflow: list, promote, roll back, generate.", no_args_is_help=True)
app.add_typer(models_app, name="models")
drift_app = typer.Typer(help="Drift of new images against the champion's reference features (Evidently).",
                        no_args_is_help=True)
app.add_typer(drift_app, name="drift")

console = Console(stderr=True)


@contextmanager
def _progress(description: str) -> Iterator[tuple[Any, Any]]:
    """A rich progress bar on stderr; yields (set_total, advance) callbacks for the core functions."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    ) as progress:
        task = progress.add_task(description, total=None)
        totals = {"n": 0}

        def set_total(n: int) -> None:
            totals["n"] += n
            progress.update(task, total=totals["n"])

        def advance(n: int) -> None:
            progress.advance(task, n)

        yield set_total, advance


def _promotion_lock(name: str) -> Any:
    """The gate's lock for ``name``: the same Prefect lease the publish task takes (file lock without an API)."""
    from tasks.promotion_lock import promotion_lock

    return promotion_lock(name)


def _fail(exc: Exception) -> None:
    """Print a domain error without a traceback and exit 1."""
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(code=1)


@config_app.command("show")
def config_show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the resolved settings (secrets masked)."""
    described = get_settings().describe()
    if as_json:
        typer.echo(json.dumps(described, indent=1, default=str))
        return
    table = Table("setting", "value")
    for key, value in described.items():
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict) else str(value))
    Console().print(table)


@spec_app.command("validate")
def spec_validate(file: Path = typer.Argument(..., help="Pipeline spec YAML.")) -> None:
    """Validate a pipeline spec; errors name the field path and the allowed values."""
    from canvascraft.spec import load_spec

    try:
        spec = load_spec(file)
    except CanvasCraftError as exc:
        _fail(exc)
    typer.echo(f"{file}: valid (pipeline {spec.name!r}, spec hash {spec.spec_hash()})")


def _project_dir() -> Path:
    """The project folder (holding prefect.yaml) at or above the current directory; workers run flows from it."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "prefect.yaml").is_file():
            return folder
    return Path.cwd()


def _services(settings: Any, only: list[str] | None = None) -> list[Any]:
    """Managed services of the local stack, in start order."""
    from canvascraft.stack.services import stack_services

    try:
        return stack_services(settings, _project_dir(), only)
    except CanvasCraftError as exc:
        _fail(exc)
        raise


ONLY = typer.Option(None, "--only", help="Only these services: s3, redis, pushgateway, mlflow, prefect, worker (repeatable).")


@stack_app.command("up")
def stack_up(only: Optional[list[str]] = ONLY) -> None:
    """Start the local services (idempotent; health-checked); print their URLs."""
    settings = get_settings()
    try:
        for service in _services(settings, only):
            status = service.start()
            typer.echo(f"{status['name']}: up at {status['url']} (pid {status['pid']}, log {status['log']})")
    except CanvasCraftError as exc:
        _fail(exc)
    api = get_settings().prefect_api_url
    if api:
        typer.echo(f"Prefect clients: export PREFECT_API_URL={api}")


@stack_app.command("down")
def stack_down(only: Optional[list[str]] = ONLY) -> None:
    """Stop the local services."""
    for service in reversed(_services(get_settings(), only)):
        stopped = service.stop()
        typer.echo(f"{service.name}: {'stopped' if stopped else 'not running'}")


@stack_app.command("status")
def stack_status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."), only: Optional[list[str]] = ONLY,
) -> None:
    """Show each service's state, URL and log; exit 1 when one is not healthy."""
    statuses = [service.status() for service in _services(get_settings(), only)]
    if as_json:
        typer.echo(json.dumps(statuses, indent=1))
        return
    table = Table("service", "running", "healthy", "url", "pid", "log")
    for s in statuses:
        table.add_row(s["name"], str(s["running"]), str(s["healthy"]), s["url"], str(s["pid"]), s["log"])
    Console().print(table)
    if not all(s["healthy"] for s in statuses):
        raise typer.Exit(code=1)


@stack_app.command("env")
def stack_env(
    worker: bool = typer.Option(False, "--worker", help="Everything a worker on another machine needs "
                                "(service addresses, artifact root, CANVASCRAFT_USE_EMBEDDED=false)."),
    with_secrets: bool = typer.Option(False, "--with-secrets", help="With --worker: include the S3 keys."),
) -> None:
    """Print ``export`` lines for the running stack (``eval "$(canvascraft stack env)"``)."""
    from canvascraft.stack.worker_env import SECRET_VARIABLES, export_lines, worker_environment

    settings = get_settings()
    if worker:
        from tasks.result_storage import register_result_storage

        try:
            env = worker_environment(settings, with_secrets=with_secrets)
            # task results and cache records on S3: a cached stage hits whichever worker runs it
            env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] = register_result_storage(settings, env["PREFECT_API_URL"])
        except CanvasCraftError as exc:
            _fail(exc)
        typer.echo("\n".join(export_lines(env)))
        if not with_secrets:
            typer.echo(f"# S3 keys not printed: give the worker {' and '.join(SECRET_VARIABLES)} "
                       "(or run with --with-secrets)", err=True)
        return
    api = settings.prefect_api_url
    if api:
        typer.echo(f"export PREFECT_API_URL={api}")
    else:
        typer.echo("# no embedded Prefect server running: flows start a temporary one", err=True)


@data_app.command("seed")
def data_seed(
    dest: str = typer.Option(..., "--dest", help="s3://BUCKET/PREFIX to write to."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="digits | fashion-mnist"),
    from_dir: Optional[Path] = typer.Option(None, "--from-dir", help="Upload this folder (class sub-folders = labels)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Write at most N images."),
) -> None:
    """Write a real dataset (or a local folder) to S3 as PNG objects plus labels.csv."""
    from canvascraft.datasets import seed_dataset, seed_from_dir
    from canvascraft.storage import make_s3_client

    if (dataset is None) == (from_dir is None):
        _fail(CanvasCraftError("give exactly one of --dataset (digits | fashion-mnist) or --from-dir DIR"))
    settings = get_settings()
    client = make_s3_client(settings)
    try:
        with _progress(f"upload to {dest}") as (_, advance):
            if dataset is not None:
                result = seed_dataset(dataset, client, dest, limit=limit, on_progress=advance,
                                      max_workers=settings.s3_max_concurrency)
            else:
                result = seed_from_dir(from_dir, client, dest, on_progress=advance,
                                       max_workers=settings.s3_max_concurrency)
    except CanvasCraftError as exc:
        _fail(exc)
    typer.echo(json.dumps(result))


@app.command("ingest")
def ingest_command(
    source: list[str] = typer.Argument(..., help="s3://BUCKET/PREFIX (one or more)."),
    spec_file: Optional[Path] = typer.Option(None, "--spec", help="Take validation rules from this spec's data section."),
    as_json: bool = typer.Option(False, "--json", help="Print the ingest report as JSON."),
) -> None:
    """Download and validate images into the local content-addressed cache; print the report."""
    from canvascraft.ingest import ImageRules, ingest
    from canvascraft.spec import DataSpec, load_spec
    from canvascraft.storage import make_s3_client

    settings = get_settings()
    try:
        data = load_spec(spec_file).data if spec_file else DataSpec(source=source[0])
        with _progress("ingest") as (set_total, advance):
            report = ingest(
                source, make_s3_client(settings), settings.home / "cache", ImageRules.from_spec(data),
                min_valid_count=data.min_valid_count, min_valid_fraction=data.min_valid_fraction,
                max_workers=settings.s3_max_concurrency, on_total=set_total, on_progress=advance,
            )
    except CanvasCraftError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(report.summary(), indent=1))
    else:
        typer.echo(
            f"dataset version {report.dataset_version}: {report.valid} valid, {len(report.quarantined)} quarantined, "
            f"{report.downloaded} downloaded, {report.reused} reused ({report.seconds:.1f}s)"
        )
        for q in report.quarantined:
            typer.echo(f"  quarantined {q.uri}: {q.reason}")


@features_app.command("get")
def features_get(
    image_ids: list[str] = typer.Argument(..., help="Image ids (content sha256, as in the snapshot manifest)."),
    service: Optional[str] = typer.Option(None, "--service", help="Feature service (the pipeline's name)."),
    spec_file: Optional[Path] = typer.Option(None, "--spec", help="Use this spec's feature service."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON rows."),
) -> None:
    """Print online features of images from Feast's online store."""
    from canvascraft.features.store import online_features, open_store
    from canvascraft.spec import load_spec

    try:
        store = open_store(get_settings())
        name = service or (load_spec(spec_file).name if spec_file else None)
        if name is None:
            allowed = sorted(s.name for s in store.list_feature_services())
            raise CanvasCraftError(f"give --service NAME or --spec FILE; allowed services: {', '.join(allowed) or '(none: run a flow or feast apply)'}")
        frame, _ = online_features(store, image_ids, name)
    except CanvasCraftError as exc:
        _fail(exc)
    rows = json.loads(frame.to_json(orient="records"))
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table("feature", *[r["image_id"][:12] for r in rows])
    for column in frame.columns[1:]:
        table.add_row(column, *[f"{r[column]:.4g}" if isinstance(r[column], float) else str(r[column]) for r in rows])
    Console().print(table)


def _load_image_set(location: str, settings: Any) -> list[Any]:
    """uint8 CHW tensors of every image in a local folder or under an ``s3://`` prefix."""
    import io

    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    from canvascraft.ingest.validation import ImageRules, validate_image

    def decode(data: bytes) -> Any:
        with Image.open(io.BytesIO(data)) as image:
            return F.to_image(image.convert("RGB"))

    blobs: list[bytes] = []
    if location.startswith("s3://"):
        from canvascraft.storage import S3Uri, list_objects, make_s3_client

        client, uri = make_s3_client(settings), S3Uri.parse(location)
        blobs = [client.get_object(Bucket=uri.bucket, Key=o["Key"])["Body"].read() for o in list_objects(client, uri)]
    else:
        folder = Path(location)
        if not folder.is_dir():
            raise CanvasCraftError(f"image set {location!r} is neither a folder nor an s3:// prefix")
        blobs = [p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()]
    rules = ImageRules(allowed_formats=("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"))
    images = [decode(b) for b in blobs if not isinstance(validate_image(b, rules), str)]
    if len(images) < 2:
        raise CanvasCraftError(f"image set {location!r} holds {len(images)} decodable images; FID needs at least 2")
    return images


@app.command("fid")
def fid_command(
    set_a: str = typer.Argument(..., help="Reference images: a folder or s3:// prefix."),
    set_b: str = typer.Argument(..., help="Generated images: a folder or s3:// prefix."),
    dims: int = typer.Option(2048, "--dims", help="Inception feature dims: 64, 192, 768 or 2048."),
    n: Optional[int] = typer.Option(None, "--n", help="Use N images of each set (default: all, equal counts)."),
    resize: str = typer.Option("bilinear", "--resize", help="bilinear | bicubic | nearest"),
    weights: Optional[str] = typer.Option(None, "--weights", help="Inception weights path or s3:// URI."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """FID and KID between two image sets (like pytorch-fid), with the keys that make scores comparable."""
    from canvascraft.evaluation.scores import score_images

    settings = get_settings()
    if dims not in (64, 192, 768, 2048):
        _fail(CanvasCraftError(f"--dims {dims} is not allowed; allowed values: 64, 192, 768, 2048"))
    if resize not in ("bilinear", "bicubic", "nearest"):
        _fail(CanvasCraftError(f"--resize {resize!r} is not allowed; allowed values: bilinear, bicubic, nearest"))
    try:
        a, b = _load_image_set(set_a, settings), _load_image_set(set_b, settings)
        count = min(len(a), len(b), n or 10**9)
        s3 = None
        if weights and weights.startswith("s3://"):
            from canvascraft.storage import make_s3_client

            s3 = make_s3_client(settings)
        with _progress("inception features") as (set_total, advance):
            # one 1 x C x H x W batch per image: sets may mix sizes (the extractor resizes each to 299)
            score = score_images([x[None] for x in a[:count]], [x[None] for x in b[:count]], cache_dir=settings.home / "cache" / "fid", weights=weights,
                                 dims=dims, resize=resize, s3_client=s3, on_total=set_total, on_progress=advance)
    except CanvasCraftError as exc:
        _fail(exc)
    data = score.model_dump()
    if as_json:
        typer.echo(json.dumps(data, indent=1))
    else:
        typer.echo(f"FID {score.fid:.4f}  KID {score.kid_mean} +- {score.kid_std}  (n={score.n}, dims={score.dims}, "
                   f"resize={score.resize}, weights {score.weights_sha256[:12]})")


def _registry() -> Any:
    """The registry module with MLflow pointed at the configured tracking URI."""
    from canvascraft import tracking
    from canvascraft.publishing import model_registry

    tracking.configure(get_settings())
    return model_registry


@models_app.command("list")
def models_list(name: str = typer.Argument(..., help="Registered model name."),
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Versions with aliases, scores and lineage."""
    registry = _registry()
    try:
        rows = registry.list_versions(name)
    except CanvasCraftError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from canvascraft.reports import classifier_summary, gate_metric_value

    table = Table("version", "aliases", "FID", "KID", "classifier score", "N", "dims", "reference",
                  "gate verdict (like for like)")
    for r in rows:
        score = r["score"] or {}
        gate = r.get("gate") or {}
        champion = (gate.get("champion") or {})
        verdict = ""
        if gate:
            metric = gate.get("metric", "fid")
            champion_value = gate_metric_value(champion, metric)
            versus = (f" vs v{gate.get('champion_version')} {metric} {champion_value:.3f}"
                      if champion_value is not None else "")
            verdict = (f"{'promoted' if gate.get('promoted') else 'kept champion'} ({gate.get('basis')})"
                       f"{versus}" + ("" if champion or gate.get("basis") == "first-version" else f": {gate.get('reason')}"))
        kid = score.get("kid_mean")
        table.add_row(r["version"], ",".join(r["aliases"]), f"{score.get('fid', float('nan')):.3f}",
                      "" if kid is None else f"{kid:.4f}", classifier_summary(score), str(score.get("n")),
                      str(score.get("dims")),
                      str(score.get("reference") or r["tags"].get("dataset_version", ""))[:16], verdict)
    Console().print(table)


@models_app.command("rollback")
def models_rollback(name: str = typer.Argument(..., help="Registered model name.")) -> None:
    """Move @champion back to @previous (refused when there is none)."""
    registry = _registry()
    try:
        outcome = registry.rollback(name, _promotion_lock(name))
    except CanvasCraftError as exc:
        _fail(exc)
    typer.echo(f"{name}: @champion -> v{outcome['champion']} (was v{outcome['replaced']})")


@models_app.command("promote")
def models_promote(name: str = typer.Argument(..., help="Registered model name."),
                   version: str = typer.Argument(..., help="Version to make @champion.")) -> None:
    """Make a version the champion by hand (the old one becomes @previous)."""
    registry = _registry()
    try:
        outcome = registry.promote(name, version, _promotion_lock(name))
    except CanvasCraftError as exc:
        _fail(exc)
    typer.echo(f"{name}: @champion -> v{outcome['champion']} (@previous v{outcome['previous']})")


@models_app.command("generate")
def models_generate(
    reference: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME/VERSION (default alias: champion)."),
    n: int = typer.Option(16, "-n", "--n", min=1, max=4096, help="Images to generate."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    out: Path = typer.Option(Path("grid.png"), "--out", help="PNG grid to write."),
    scale: int = typer.Option(1, "--scale", min=1, max=16, help="Enlarge each pixel to SCALE x SCALE for viewing."),
) -> None:
    """Generate images from a registered model and write them as a PNG grid."""
    registry = _registry()
    try:
        images = registry.generate(reference, n, seed)
    except CanvasCraftError as exc:
        _fail(exc)
    path = registry.write_grid_png(images, out, scale=scale)
    typer.echo(f"wrote {n} images ({images.shape[1]}x{images.shape[2]}) to {path}")


@drift_app.command("check")
def drift_check_command(
    spec_file: Path = typer.Argument(..., help="Pipeline spec YAML (drift settings, palettes, publish target)."),
    incoming: Optional[str] = typer.Option(None, "--incoming", help="s3://BUCKET/PREFIX of new images "
                                           "(default: the spec's drift.incoming)."),
    as_json: bool = typer.Option(False, "--json", help="Print the drift result as JSON."),
    push_features: bool = typer.Option(True, "--push-features/--no-push-features",
                                       help="Write the new images' features to Feast and materialize them."),
    fail_on_drift: bool = typer.Option(False, "--fail-on-drift", help="Exit 3 when the dataset drifted."),
) -> None:
    """Compare new images with the champion's reference features; HTML report + MLflow run (emits no event).

    The Prefect flow (``python -m flows.drift_check SPEC --incoming ...`` or the drift_check deployment) does the
    same and also emits ``canvascraft.drift.detected``, which starts a retrain.
    """
    from canvascraft.drift import check_drift, log_drift_run
    from canvascraft.spec import load_spec

    settings = get_settings()
    try:
        spec = load_spec(spec_file)
        checked = check_drift(spec, settings, incoming)
        result = log_drift_run(settings, spec, checked.result, tags={"source": "cli"})
        features = None
        if push_features:
            from canvascraft.artifact_root import artifact_root
            from canvascraft.features.stage import materialize_snapshot
            from canvascraft.ingest.snapshots import load_manifest

            manifest = load_manifest(checked.incoming_report.dataset_version, artifact_root(settings))
            features = materialize_snapshot(manifest, spec, settings)
    except CanvasCraftError as exc:
        _fail(exc)
    if as_json:
        data = result.model_dump(mode="json")
        data["features"] = {k: features[k] for k in ("rows_written", "rows_materialized")} if features else None
        typer.echo(json.dumps(data, indent=1))
    else:
        table = Table("feature", "score", "method", "drifted")
        for name, column in sorted(result.columns.items(), key=lambda kv: (not kv[1].drifted, kv[0])):
            table.add_row(name, "n/a" if column.score is None else f"{column.score:.4g}", column.method,
                          "yes" if column.drifted else "")
        Console().print(table)
        typer.echo(f"{'DRIFT' if result.dataset_drift else 'no drift'}: share {result.drift_share:.3f} "
                   f"(threshold {result.drift_share_threshold}) of {result.incoming} vs dataset "
                   f"{result.reference_dataset_version} ({result.reference_model} v{result.reference_model_version}); "
                   f"report {result.report_html}; MLflow run {result.mlflow_run_id}")
    if fail_on_drift and result.dataset_drift:
        raise typer.Exit(code=3)


POOL_TEMPLATES = {"process": "deployments/work-pools/process.json",
                  "kubernetes": "deployments/work-pools/kubernetes-gpu.json"}
NOTIFY_PLACEHOLDER = "{{ notify_block_id }}"


def _prefect(args: list[str], project: Path, check: bool = True) -> Any:
    """Run the Prefect CLI of this environment (no prompts) in the project folder; echo what it runs."""
    import subprocess

    from canvascraft.stack.services import _script

    command = [_script("prefect"), "--no-prompt", *args]
    typer.echo("$ prefect " + " ".join(args))
    done = subprocess.run(command, cwd=project, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise CanvasCraftError(f"`prefect {' '.join(args)}` failed (exit {done.returncode}):\n"
                               f"{(done.stdout + done.stderr).strip()[-2000:]}")
    return done


def _automation_files(project: Path, notify_block: str | None) -> list[tuple[Path, str, str | None]]:
    """(file, automation name, block slug to fill in or None) for deployments/automations/*.yaml."""
    import yaml

    found = []
    for path in sorted((project / "deployments" / "automations").glob("*.y*ml")):
        text = path.read_text()
        name = (yaml.safe_load(text) or {}).get("name")
        if not name:
            raise CanvasCraftError(f"{path}: an automation file needs a top-level name")
        found.append((path, name, notify_block if NOTIFY_PLACEHOLDER in text else None))
    return found


@app.command("deploy")
def deploy_command(
    pool_type: str = typer.Option("process", "--pool-type", help="process (local worker) | kubernetes "
                                  "(GPU nodes; the template requests nvidia.com/gpu)."),
    notify_block: Optional[str] = typer.Option(None, "--notify-block", help="Notification block slug "
                                               "(e.g. custom-webhook/canvascraft-alerts) for failed retrains."),
    skip_deploy: bool = typer.Option(False, "--skip-deploy", help="Only the pool and automations."),
) -> None:
    """Create/update the work pool, apply deployments/automations/, then `prefect deploy --all`."""
    import os
    import tempfile

    from canvascraft.stack.services import WORK_POOL as pool  # the pool every deployment in prefect.yaml names

    if pool_type not in POOL_TEMPLATES:
        _fail(CanvasCraftError(f"--pool-type {pool_type!r} is not allowed; "
                               f"allowed values: {', '.join(POOL_TEMPLATES)}"))
    project = _project_dir()
    if not (project / "prefect.yaml").is_file():
        _fail(CanvasCraftError(f"no prefect.yaml at or above {Path.cwd()}; run from the CanvasCraft project"))
    if not os.environ.get("PREFECT_API_URL") and get_settings().prefect_api_url:
        os.environ["PREFECT_API_URL"] = get_settings().prefect_api_url  # the embedded server of `stack up`
    try:
        _prefect(["work-pool", "create", pool, "--type", pool_type, "--base-job-template",
                  str(project / POOL_TEMPLATES[pool_type]), "--overwrite"], project)
        for path, name, block in _automation_files(project, notify_block):
            if NOTIFY_PLACEHOLDER in path.read_text() and block is None:
                typer.echo(f"skip {path.name}: give --notify-block BLOCK_TYPE/NAME to apply it")
                continue
            source = path
            if block is not None:
                inspected = _prefect(["block", "inspect", block, "--output", "json"], project)
                block_id = json.loads(inspected.stdout)["id"]
                rendered = Path(tempfile.mkdtemp()) / path.name
                rendered.write_text(path.read_text().replace(NOTIFY_PLACEHOLDER, block_id))
                source = rendered
            while _prefect(["automation", "delete", name], project, check=False).returncode == 0:
                pass  # replace every automation of that name: re-running deploy never duplicates them
            _prefect(["automation", "create", "--from-file", str(source)], project)
        if not skip_deploy:
            done = _prefect(["deploy", "--all"], project)
            for line in done.stdout.splitlines():
                if "successfully created" in line or "successfully updated" in line:
                    typer.echo("  " + line.strip(" │"))
    except CanvasCraftError as exc:
        _fail(exc)
    typer.echo(f"work pool {pool} ({pool_type}) ready" + ("" if skip_deploy else "; deployments applied")
               + f"; start a worker: prefect worker start --pool {pool}")


def main() -> None:
    """Entry point for ``python -m canvascraft.cli``."""
    app()


if __name__ == "__main__":
    sys.exit(main())
