"""What the upload tests share: a draft release, file bodies of a few parts, and a client that PUTs
parts to presigned URLs the way the browser uploader and the command-line script do."""

from __future__ import annotations

import concurrent.futures
import os
import urllib.error
import urllib.request

from releases import uploads
from releases.models import Artifact, Release
from tests.factories import ReleaseFactory

MIB = 1024 * 1024
# tests use S3's smallest part size (portal/settings_test.py): three parts, the last one short.
PART_SIZE = 5 * MIB
THREE_PARTS = 2 * PART_SIZE + 123_457


def draft_release(model, version: str = "v2.0") -> Release:
    return ReleaseFactory(
        model=model, version=version, status=Release.Status.DRAFT, revision="", published_at=None
    )


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def part_body(content: bytes, part_number: int, part_size: int = PART_SIZE) -> bytes:
    return content[(part_number - 1) * part_size : part_number * part_size]


def put(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """PUT ``body`` to a presigned URL; returns the status and the ETag storage answered."""
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local SeaweedFS
            return response.status, response.headers["ETag"] or ""
    except urllib.error.HTTPError as error:
        return error.code, ""


def upload_parts(artifact: Artifact, content: bytes, part_numbers: list[int]) -> dict[int, str]:
    """PUT the given parts of ``content`` in parallel (four at a time), as the uploaders do."""
    urls = uploads.artifact_upload_part_urls(artifact=artifact, part_numbers=part_numbers)

    def send(number: int) -> tuple[int, str]:
        status, etag = put(urls[number], part_body(content, number, artifact.part_size))
        assert status == 200, f"part {number}: storage answered {status}"
        return number, etag

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(send, part_numbers))
