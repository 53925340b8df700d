"""Object storage: the one module that talks to S3 (AWS S3 or any S3-compatible service).

Nothing else in Gatehouse imports boto3 or botocore. Everything here works on the bucket named by the
``S3_BUCKET`` setting and reads its configuration from Django settings:

``S3_ENDPOINT_URL``           endpoint of an S3-compatible service, or None for AWS S3
``S3_BUCKET``                 the bucket holding the artifacts
``S3_ACCESS_KEY_ID``          credentials; None (or empty) lets boto3 find them (instance role, ...)
``S3_SECRET_ACCESS_KEY``
``S3_REGION``                 e.g. "us-east-1"
``S3_ADDRESSING_STYLE``       "path", "virtual" or "auto"
``DOWNLOAD_URL_LIFETIME_SECONDS``  default lifetime of a presigned download URL

The portal never proxies weight bytes to people: it hands out presigned URLs (presign_download). Reading an
object through the portal (iter_object_chunks) is for server-side work such as verifying an upload's sha256.
Uploads go the same way round: the portal starts a multipart upload, presigns a PUT URL for each part
(presign_upload_part), and the publisher's browser or script sends the bytes straight to the bucket.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# SigV4 presigned URLs cannot live longer than seven days; S3 refuses them.
MAX_URL_LIFETIME_SECONDS = 7 * 24 * 60 * 60
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
ADDRESSING_STYLES = ("path", "virtual", "auto")

_CONNECT_TIMEOUT_SECONDS = 5
_READ_TIMEOUT_SECONDS = 60
_MAX_ATTEMPTS = 3
# The readiness probe asks once and gives up quickly: a health check must answer within a scrape.
_PROBE_TIMEOUT_SECONDS = 2


class StorageError(Exception):
    """Base class of the errors raised by this module."""


class StorageUnavailable(StorageError):
    """The object storage could not be reached or answered with a server error (after retries)."""


class ObjectNotFound(StorageError):
    """The key (or the requested version of it) does not exist in the bucket."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What put_object stored: ``sha256`` is the hex digest of the bytes sent, computed locally."""

    key: str
    version_id: str | None
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class _ClientSettings:
    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None
    region: str | None
    addressing_style: str


def _current_client_settings() -> _ClientSettings:
    addressing_style = settings.S3_ADDRESSING_STYLE
    if addressing_style not in ADDRESSING_STYLES:
        raise ImproperlyConfigured(
            f"S3_ADDRESSING_STYLE must be one of {', '.join(ADDRESSING_STYLES)}, not {addressing_style!r}."
        )
    return _ClientSettings(
        endpoint_url=settings.S3_ENDPOINT_URL or None,
        access_key_id=settings.S3_ACCESS_KEY_ID or None,
        secret_access_key=settings.S3_SECRET_ACCESS_KEY or None,
        region=settings.S3_REGION or None,
        addressing_style=addressing_style,
    )


@functools.lru_cache(maxsize=8)
def _build_client(client_settings: _ClientSettings, probe: bool = False) -> Any:
    config = botocore.config.Config(
        signature_version="s3v4",
        s3={"addressing_style": client_settings.addressing_style},
        connect_timeout=_PROBE_TIMEOUT_SECONDS if probe else _CONNECT_TIMEOUT_SECONDS,
        read_timeout=_PROBE_TIMEOUT_SECONDS if probe else _READ_TIMEOUT_SECONDS,
        retries={"max_attempts": 1 if probe else _MAX_ATTEMPTS, "mode": "standard"},
        # The endpoint comes from Django settings only, never from AWS_ENDPOINT_URL* in the environment.
        ignore_configured_endpoint_urls=True,
    )
    # A session of its own: boto3's default session is shared module state and not thread-safe to create.
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=client_settings.endpoint_url,
        aws_access_key_id=client_settings.access_key_id,
        aws_secret_access_key=client_settings.secret_access_key,
        region_name=client_settings.region,
        config=config,
    )


def get_client() -> Any:
    """Return the S3 client for the current settings.

    One client is built per distinct configuration and reused (building one costs milliseconds; presigning
    with a cached one about half a millisecond). Tests that override the S3_* settings get a client of their
    own.
    Raises ImproperlyConfigured for an unknown addressing style.
    """
    return _build_client(_current_client_settings())


def clear_client_cache() -> None:
    """Forget every cached client (for tests that restart the storage server)."""
    _build_client.cache_clear()


def _bucket() -> str:
    bucket = settings.S3_BUCKET
    if not bucket:
        raise ImproperlyConfigured("S3_BUCKET is not set.")
    return bucket


def _error_code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _http_status(error: botocore.exceptions.ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


@contextlib.contextmanager
def _translated_errors(key: str | None = None) -> Iterator[None]:
    """Turn connection failures and server errors into StorageUnavailable, and 404s into ObjectNotFound."""
    try:
        yield
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as error:
        raise StorageUnavailable(f"Object storage unreachable: {error}") from error
    except botocore.exceptions.ClientError as error:
        if _http_status(error) >= 500:
            raise StorageUnavailable(f"Object storage failed: {error}") from error
        if key is not None and (
            _http_status(error) == 404 or _error_code(error) in {"NoSuchKey", "NoSuchVersion", "404"}
        ):
            raise ObjectNotFound(key) from error
        raise


def bucket_check() -> None:
    """Ask the store for the bucket once, within ``_PROBE_TIMEOUT_SECONDS``, without retries.

    Returns when the bucket answers; raises StorageUnavailable saying what failed otherwise (unreachable,
    a server error, no such bucket, credentials refused). For readiness checks, not for the request path.
    """
    client = _build_client(_current_client_settings(), probe=True)
    try:
        with _translated_errors():
            client.head_bucket(Bucket=_bucket())
    except botocore.exceptions.ClientError as error:
        raise StorageUnavailable(
            f"Object storage refused the bucket check ({_http_status(error)} {_error_code(error)})"
        ) from error
    except botocore.exceptions.BotoCoreError as error:
        # No credentials found, a malformed endpoint: the check cannot even be asked.
        raise StorageUnavailable(f"Object storage cannot be asked: {error}") from error


def ensure_bucket(versioning: bool = True) -> None:
    """Make sure the bucket exists and, if ``versioning``, that versioning is enabled on it.

    Safe to call repeatedly and concurrently. Never disables versioning once enabled (S3 cannot).
    """
    client = get_client()
    bucket = _bucket()
    with _translated_errors():
        try:
            client.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as error:
            if _http_status(error) != 404 and _error_code(error) not in {"404", "NoSuchBucket"}:
                raise
            create_arguments: dict[str, Any] = {"Bucket": bucket}
            region = client.meta.region_name
            # us-east-1 is the one region that refuses an explicit location constraint.
            if settings.S3_ENDPOINT_URL is None and region and region != "us-east-1":
                create_arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                client.create_bucket(**create_arguments)
            except botocore.exceptions.ClientError as create_error:
                if _error_code(create_error) != "BucketAlreadyOwnedByYou":
                    raise
        if versioning and client.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def put_object(*, key: str, body: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
    """Store ``body`` under ``key`` and return its version id, size and locally computed sha256.

    The sha256 is also sent as the object's S3 checksum, so the server refuses bytes damaged in transit.
    """
    digest = hashlib.sha256(body)
    with _translated_errors():
        response = get_client().put_object(
            Bucket=_bucket(),
            Key=key,
            Body=body,
            ContentType=content_type,
            ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
        )
    return ObjectInfo(
        key=key, version_id=response.get("VersionId"), size=len(body), sha256=digest.hexdigest()
    )


def head_object(*, key: str, version_id: str | None = None) -> dict[str, Any]:
    """Return the object's metadata (ContentLength, ETag, VersionId, ContentType, ...) without its bytes.

    Raises ObjectNotFound if the key or that version does not exist.
    """
    arguments: dict[str, Any] = {"Bucket": _bucket(), "Key": key}
    if version_id:
        arguments["VersionId"] = version_id
    with _translated_errors(key):
        response = get_client().head_object(**arguments)
    response.pop("ResponseMetadata", None)
    return response


def presign_download(
    *, key: str, version_id: str | None, filename: str, lifetime_seconds: int | None = None
) -> str:
    """Return a presigned GET URL for exactly this object version, served as an attachment named ``filename``.

    The URL is valid for ``lifetime_seconds`` (default: the DOWNLOAD_URL_LIFETIME_SECONDS setting); a lifetime
    below 1 second or above 7 days raises ValueError. With a ``version_id`` the URL keeps returning that
    version's bytes after the key is overwritten. Signing is local: no request reaches the storage.
    """
    if lifetime_seconds is None:
        lifetime_seconds = settings.DOWNLOAD_URL_LIFETIME_SECONDS
    if isinstance(lifetime_seconds, bool) or not isinstance(lifetime_seconds, int):
        raise ValueError(f"The URL lifetime must be a whole number of seconds, not {lifetime_seconds!r}.")
    if not 1 <= lifetime_seconds <= MAX_URL_LIFETIME_SECONDS:
        raise ValueError(
            f"The URL lifetime must be between 1 and {MAX_URL_LIFETIME_SECONDS} seconds, "
            f"not {lifetime_seconds}."
        )
    params: dict[str, Any] = {
        "Bucket": _bucket(),
        "Key": key,
        "ResponseContentDisposition": attachment_content_disposition(filename),
    }
    if version_id:
        params["VersionId"] = version_id
    return get_client().generate_presigned_url("get_object", Params=params, ExpiresIn=lifetime_seconds)


def iter_object_chunks(
    *, key: str, version_id: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[bytes]:
    """Yield the object's bytes in chunks of at most ``chunk_size``, for server-side hashing.

    The connection is released when the generator is exhausted or closed. Raises ObjectNotFound or
    StorageUnavailable (also in the middle of the stream).
    """
    arguments: dict[str, Any] = {"Bucket": _bucket(), "Key": key}
    if version_id:
        arguments["VersionId"] = version_id
    with _translated_errors(key):
        body = get_client().get_object(**arguments)["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()


# -- Multipart uploads (publishers' browsers and scripts PUT the parts straight to the bucket) ---------------

# S3's limits: part numbers 1 to 10,000; every part but the last at least 5 MiB and at most 5 GiB.
MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024

# What S3 answers when CompleteMultipartUpload is given parts it cannot assemble.
_REJECTED_PART_CODES = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "EntityTooLarge", "MalformedXML"}


class UploadNotFound(StorageError):
    """The multipart upload does not exist: never started, aborted, or already completed."""


class UploadRejected(StorageError):
    """S3 refused to assemble the parts it was given; ``code`` is S3's error code (e.g. ``InvalidPart``)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class UploadedPart:
    part_number: int
    etag: str
    size: int
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    key: str
    upload_id: str
    initiated_at: datetime


@contextlib.contextmanager
def _translated_upload_errors(upload_id: str) -> Iterator[None]:
    """Like _translated_errors, and NoSuchUpload becomes UploadNotFound."""
    with _translated_errors():
        try:
            yield
        except botocore.exceptions.ClientError as error:
            if _error_code(error) == "NoSuchUpload":
                raise UploadNotFound(upload_id) from error
            raise


def _check_lifetime(lifetime_seconds: int) -> None:
    if isinstance(lifetime_seconds, bool) or not isinstance(lifetime_seconds, int):
        raise ValueError(f"The URL lifetime must be a whole number of seconds, not {lifetime_seconds!r}.")
    if not 1 <= lifetime_seconds <= MAX_URL_LIFETIME_SECONDS:
        raise ValueError(
            f"The URL lifetime must be between 1 and {MAX_URL_LIFETIME_SECONDS} seconds, "
            f"not {lifetime_seconds}."
        )


def _check_part_number(part_number: int) -> None:
    if isinstance(part_number, bool) or not isinstance(part_number, int) or not 1 <= part_number <= MAX_PARTS:
        raise ValueError(f"A part number is a whole number from 1 to {MAX_PARTS}, not {part_number!r}.")


def create_multipart_upload(*, key: str, content_type: str = "application/octet-stream") -> str:
    """Start a multipart upload of ``key`` and return its upload id.

    Nothing is visible under ``key`` until complete_multipart_upload; the parts take space until the upload
    is completed or aborted (abort_multipart_upload, list_multipart_uploads find the forgotten ones).
    """
    with _translated_errors():
        response = get_client().create_multipart_upload(Bucket=_bucket(), Key=key, ContentType=content_type)
    return str(response["UploadId"])


def presign_upload_part(*, key: str, upload_id: str, part_number: int, lifetime_seconds: int) -> str:
    """Return a presigned PUT URL for one part of a multipart upload, valid for ``lifetime_seconds``.

    The signature covers the key, the upload id and the part number: the URL cannot be used for another
    part, upload or object. Signing is local: no request reaches the storage. Raises ValueError for a part
    number outside 1 to 10,000 or a lifetime outside 1 second to 7 days.
    """
    _check_part_number(part_number)
    _check_lifetime(lifetime_seconds)
    return get_client().generate_presigned_url(
        "upload_part",
        Params={"Bucket": _bucket(), "Key": key, "UploadId": upload_id, "PartNumber": part_number},
        ExpiresIn=lifetime_seconds,
    )


def list_uploaded_parts(*, key: str, upload_id: str) -> list[UploadedPart]:
    """The parts stored so far for this upload, by part number: what a resumed upload need not send again.

    Raises UploadNotFound if the upload was aborted or completed.
    """
    parts: list[UploadedPart] = []
    paginator = get_client().get_paginator("list_parts")
    with _translated_upload_errors(upload_id):
        for page in paginator.paginate(Bucket=_bucket(), Key=key, UploadId=upload_id):
            parts.extend(
                UploadedPart(
                    part_number=int(part["PartNumber"]),
                    etag=str(part["ETag"]),
                    size=int(part["Size"]),
                    last_modified=part["LastModified"].astimezone(UTC),
                )
                for part in page.get("Parts", [])
            )
    return sorted(parts, key=lambda part: part.part_number)


def complete_multipart_upload(*, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> str | None:
    """Assemble the upload from ``parts`` (part number, ETag) in ascending order; return the version id.

    The version id is None when the bucket has no versioning. Completing an upload that was just completed
    with the same parts answers the same version on S3 and SeaweedFS; once S3 has forgotten the upload it
    raises UploadNotFound (head_object on the key then tells whether it was completed). Raises UploadRejected
    when a part is missing, has another ETag, is out of order, or is too small and not the last.
    """
    for part_number, _ in parts:
        _check_part_number(part_number)
    arguments = {
        "Bucket": _bucket(),
        "Key": key,
        "UploadId": upload_id,
        "MultipartUpload": {"Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]},
    }
    with _translated_upload_errors(upload_id):
        try:
            response = get_client().complete_multipart_upload(**arguments)
        except botocore.exceptions.ClientError as error:
            if _error_code(error) in _REJECTED_PART_CODES:
                message = str(error.response.get("Error", {}).get("Message", "")) or _error_code(error)
                raise UploadRejected(message, code=_error_code(error)) from error
            raise
    return response.get("VersionId") or None


def abort_multipart_upload(*, key: str, upload_id: str) -> None:
    """Abort the upload and free its parts. Aborting an upload that no longer exists does nothing.

    A part PUT still in flight may land after the abort; S3 advises aborting again, which the periodic
    clean-up (list_multipart_uploads) does.
    """
    with contextlib.suppress(UploadNotFound), _translated_upload_errors(upload_id):
        get_client().abort_multipart_upload(Bucket=_bucket(), Key=key, UploadId=upload_id)


def list_multipart_uploads(*, older_than: datetime | None = None, prefix: str = "") -> list[MultipartUpload]:
    """Multipart uploads in progress under ``prefix``, started before ``older_than`` if given.

    Uses boto3's paginator: SeaweedFS pages by upload id alone (it sends no NextKeyMarker), AWS by both.
    """
    uploads: list[MultipartUpload] = []
    paginator = get_client().get_paginator("list_multipart_uploads")
    with _translated_errors():
        for page in paginator.paginate(Bucket=_bucket(), Prefix=prefix):
            for upload in page.get("Uploads", []):
                initiated_at = upload["Initiated"].astimezone(UTC)
                if older_than is None or initiated_at < older_than:
                    uploads.append(
                        MultipartUpload(
                            key=str(upload["Key"]),
                            upload_id=str(upload["UploadId"]),
                            initiated_at=initiated_at,
                        )
                    )
    return uploads


def delete_object_version(*, key: str, version_id: str | None) -> None:
    """Delete one version of ``key`` for good (or, without a version id, add a delete marker).

    Deleting a version that does not exist does nothing.
    """
    arguments: dict[str, Any] = {"Bucket": _bucket(), "Key": key}
    if version_id:
        arguments["VersionId"] = version_id
    with _translated_errors():
        get_client().delete_object(**arguments)


def ensure_bucket_cors(origins: Sequence[str]) -> None:
    """Let browsers on ``origins`` PUT upload parts to the bucket and read each part's ETag.

    Replaces the bucket's CORS configuration with one rule. Downloads need no CORS: a browser follows the
    portal's redirect to a presigned URL as a plain navigation. Raises ValueError for no or a wildcard
    origin: any site could then drive a publisher's browser to upload (it still needs a signed URL).
    """
    cleaned = [origin.rstrip("/") for origin in origins if origin]
    if not cleaned or "*" in cleaned:
        raise ValueError("Name the portal's origins, e.g. https://gatehouse.example.org; not '*'.")
    rule = {
        "AllowedOrigins": cleaned,
        "AllowedMethods": ["PUT"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3600,
    }
    with _translated_errors():
        get_client().put_bucket_cors(Bucket=_bucket(), CORSConfiguration={"CORSRules": [rule]})


def bucket_cors_origins() -> list[str]:
    """The origins the bucket's CORS rules allow to PUT; empty if it has no CORS configuration."""
    with _translated_errors():
        try:
            rules = get_client().get_bucket_cors(Bucket=_bucket()).get("CORSRules", [])
        except botocore.exceptions.ClientError as error:
            if _error_code(error) == "NoSuchCORSConfiguration":
                return []
            raise
    return [
        origin
        for rule in rules
        if "PUT" in rule.get("AllowedMethods", [])
        for origin in rule["AllowedOrigins"]
    ]


# -- Content-Disposition ------------------------------------------------------------------------------------

_UNSAFE_FALLBACK_CHARACTERS = re.compile(r"[^A-Za-z0-9._ +()\[\]-]+")


def safe_filename(filename: str) -> str:
    """Reduce ``filename`` to a plain file name: no directory part, no control characters, never empty."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(character for character in name if unicodedata.category(character)[0] != "C")
    name = name.strip().strip(".")
    return name or "download"


def attachment_content_disposition(filename: str) -> str:
    """Build an RFC 6266 ``attachment`` header value for ``filename``.

    Always carries a quoted ASCII ``filename`` (non-ASCII letters transliterated where possible, other unsafe
    characters replaced by ``_``); adds ``filename*`` (RFC 5987, UTF-8) when that fallback differs.
    """
    name = safe_filename(filename)
    # Accents fall away ("è" -> "e"); whatever has no ASCII form becomes "_" through the unsafe-run rule.
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_name = "".join(character for character in decomposed if not unicodedata.combining(character))
    ascii_name = _UNSAFE_FALLBACK_CHARACTERS.sub("_", ascii_name).strip() or "download"
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"
    return value
