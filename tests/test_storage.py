"""portal.storage against a real S3-compatible server (SeaweedFS), which checks signatures and expiry."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from portal import storage
from tests.scenes import fetch


def with_query_value(url: str, name: str, value: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = [(key, value if key == name else old) for key, old in urllib.parse.parse_qsl(parts.query)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_presigned_url_downloads_the_uploaded_bytes(s3):
    body = os.urandom(3 * 1024 * 1024 + 17)
    info = s3.put(s3.key("model.safetensors"), body)

    status, _, downloaded = fetch(
        storage.presign_download(key=info.key, version_id=info.version_id, filename="model.safetensors")
    )

    assert status == 200
    assert info.size == len(body)
    assert info.sha256 == sha256(body)
    assert sha256(downloaded) == sha256(body)


def test_put_object_returns_a_version_id_and_head_object_agrees(s3):
    info = s3.put(s3.key("config.json"), b'{"layers": 2}')

    head = storage.head_object(key=info.key, version_id=info.version_id)

    assert info.version_id
    assert head["ContentLength"] == 13
    assert head["VersionId"] == info.version_id


def test_iter_object_chunks_yields_the_bytes_for_server_side_hashing(s3):
    body = os.urandom(1024 * 1024 + 5)
    info = s3.put(s3.key("weights.bin"), body)

    chunks = list(storage.iter_object_chunks(key=info.key, version_id=info.version_id, chunk_size=256 * 1024))

    assert max(len(chunk) for chunk in chunks) <= 256 * 1024
    assert sha256(b"".join(chunks)) == info.sha256


def test_presigned_url_serves_a_range_for_resumed_downloads(s3):
    body = os.urandom(100_000)
    info = s3.put(s3.key("shard-00001.bin"), body)
    url = storage.presign_download(key=info.key, version_id=info.version_id, filename="shard-00001.bin")

    status, _, rest = fetch(url, headers={"Range": "bytes=60000-"})

    assert status == 206
    assert rest == body[60000:]


def test_expired_url_is_refused(s3):
    info = s3.put(s3.key("expiring.bin"), b"short-lived")
    url = storage.presign_download(
        key=info.key, version_id=info.version_id, filename="e.bin", lifetime_seconds=1
    )
    # The control: the same object and signing, with a lifetime a busy machine cannot outrun.
    # (A one-second URL is valid only until the end of its signing second plus one, which a
    # loaded test machine may miss before its first fetch.)
    control = storage.presign_download(
        key=info.key, version_id=info.version_id, filename="e.bin", lifetime_seconds=60
    )
    assert fetch(control)[0] == 200

    time.sleep(2.5)

    status, _, body = fetch(url)
    assert status == 403
    assert b"short-lived" not in body


def test_url_with_a_tampered_signature_is_refused(s3):
    info = s3.put(s3.key("signed.bin"), b"secret weights")
    url = storage.presign_download(key=info.key, version_id=info.version_id, filename="signed.bin")
    signature = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Signature"][0]
    tampered = signature[:-1] + ("0" if signature[-1] != "0" else "1")

    status, _, body = fetch(with_query_value(url, "X-Amz-Signature", tampered))

    assert status == 403
    assert b"secret weights" not in body


def test_url_rekeyed_to_another_object_is_refused(s3):
    granted = s3.put(s3.key("public.bin"), b"public bytes")
    other = s3.put(s3.key("private.bin"), b"private bytes")
    url = storage.presign_download(key=granted.key, version_id=None, filename="public.bin")

    rekeyed = url.replace(urllib.parse.quote(granted.key), urllib.parse.quote(other.key))
    assert rekeyed != url

    status, _, body = fetch(rekeyed)

    assert status == 403
    assert b"private bytes" not in body


def test_url_with_an_edited_expiry_is_refused(s3):
    info = s3.put(s3.key("expiry.bin"), b"bytes")
    url = storage.presign_download(key=info.key, version_id=None, filename="x.bin", lifetime_seconds=60)

    status, _, _ = fetch(with_query_value(url, "X-Amz-Expires", "604800"))

    assert status == 403


def test_url_for_the_first_version_returns_the_first_bytes_after_an_overwrite(s3):
    key = s3.key("model.bin")
    first = s3.put(key, b"version one")
    second = s3.put(key, b"version two, longer")

    first_status, _, first_body = fetch(
        storage.presign_download(key=key, version_id=first.version_id, filename="model.bin")
    )
    latest_status, _, latest_body = fetch(
        storage.presign_download(key=key, version_id=None, filename="m.bin")
    )

    assert first.version_id != second.version_id
    assert (first_status, first_body) == (200, b"version one")
    assert (latest_status, latest_body) == (200, b"version two, longer")


def test_download_is_an_attachment_with_the_filename(s3):
    info = s3.put(s3.key("blob"), b"bytes")
    url = storage.presign_download(key=info.key, version_id=info.version_id, filename="model-7b.safetensors")

    _, headers, _ = fetch(url)

    assert headers["Content-Disposition"] == 'attachment; filename="model-7b.safetensors"'


def test_non_ascii_filename_is_sent_as_rfc_6266_filename_star(s3):
    info = s3.put(s3.key("blob"), b"bytes")
    url = storage.presign_download(key=info.key, version_id=info.version_id, filename="modèle-权重.bin")

    _, headers, _ = fetch(url)

    disposition = headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="modele-_.bin"; ')
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    assert urllib.parse.unquote(encoded) == "modèle-权重.bin"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd", 'attachment; filename="passwd"'),
        ('evil".bin', "attachment; filename=\"evil_.bin\"; filename*=UTF-8''evil%22.bin"),
        ("line\r\nbreak.bin", 'attachment; filename="linebreak.bin"'),
        ("", 'attachment; filename="download"'),
    ],
)
def test_content_disposition_neutralises_unsafe_filenames(filename, expected):
    assert storage.attachment_content_disposition(filename) == expected


@pytest.mark.parametrize("lifetime_seconds", [0, -5, 7 * 24 * 3600 + 1])
def test_lifetime_outside_one_second_to_seven_days_is_refused(s3, lifetime_seconds):
    with pytest.raises(ValueError, match="lifetime"):
        storage.presign_download(
            key="any", version_id=None, filename="a.bin", lifetime_seconds=lifetime_seconds
        )


def test_lifetime_defaults_to_the_setting(s3, settings):
    settings.DOWNLOAD_URL_LIFETIME_SECONDS = 321

    url = storage.presign_download(key="any", version_id=None, filename="a.bin")

    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Expires"] == ["321"]


def test_head_of_a_missing_key_raises_object_not_found(s3):
    with pytest.raises(storage.ObjectNotFound):
        storage.head_object(key=s3.key("missing.bin"))


def test_unreachable_storage_raises_storage_unavailable(s3, settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.S3_ENDPOINT_URL = f"http://127.0.0.1:{closed_port}"

    with pytest.raises(storage.StorageUnavailable):
        storage.head_object(key="anything")
