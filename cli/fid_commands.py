"""``canvascraft fid``: FID/KID between two image sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def _load_image_set(location: str, settings: Any) -> list[Any]:
    """uint8 CHW tensors of every image in a local folder or under an ``s3://`` prefix."""
    import io

    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    from canvascraft.errors import CanvasCraftError
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


def fid_command(
    set_a: str = typer.Argument(..., help="Reference images: a folder or s3:// prefix."),
    set_b: str = typer.Argument(..., help="Generated images: a folder or s3:// prefix."),
    dims: int = typer.Option(2048, "--dims", help="Inception feature dims: 64, 192, 768 or 2048."),
    n: int | None = typer.Option(None, "--n", help="Use N images of each set (default: all, equal counts)."),
    resize: str = typer.Option("bilinear", "--resize", help="bilinear | bicubic | nearest"),
    weights: str | None = typer.Option(None, "--weights", help="Inception weights path or s3:// URI."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """FID and KID between two image sets (like pytorch-fid), with the keys that make scores comparable."""
    from canvascraft.evaluation.score_records import as_feature_dims, as_resize_mode

    feature_dims, resize_mode = as_feature_dims(dims, "--dims"), as_resize_mode(resize, "--resize")
    from canvascraft.evaluation.scores import score_images
    from canvascraft.settings import get_settings
    from cli.common import progress

    settings = get_settings()
    a, b = _load_image_set(set_a, settings), _load_image_set(set_b, settings)
    count = min(len(a), len(b), n or 10**9)
    s3 = None
    if weights and weights.startswith("s3://"):
        from canvascraft.storage import make_s3_client

        s3 = make_s3_client(settings)
    with progress("inception features") as (set_total, advance):
        # one 1 x C x H x W batch per image: sets may mix sizes (the extractor resizes each to 299)
        score = score_images(
            [x[None] for x in a[:count]],
            [x[None] for x in b[:count]],
            cache_dir=settings.home / "cache" / "fid",
            weights=weights,
            dims=feature_dims,
            resize=resize_mode,
            s3_client=s3,
            on_total=set_total,
            on_progress=advance,
        )
    if as_json:
        typer.echo(json.dumps(score.model_dump(), indent=1))
    else:
        typer.echo(
            f"FID {score.fid:.4f}  KID {score.kid_mean} +- {score.kid_std}  (n={score.n}, dims={score.dims}, "
            f"resize={score.resize}, weights {score.weights_sha256[:12]})"
        )
