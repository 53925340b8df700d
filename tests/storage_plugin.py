"""Pytest plugin: a real S3-compatible server (SeaweedFS) for the test session.

``seaweedfs`` (session): one ``weed mini`` per test session, in a temporary directory, stopped at the end.
``s3`` (function): points the S3_* Django settings at it, makes sure the bucket exists with versioning on,
and yields an ``S3TestStorage`` to put objects with.

Enable it from tests/conftest.py with ``pytest_plugins = ["tests.storage_plugin"]``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from portal import storage
from portal.seaweedfs import SeaweedFS
from portal.storage_probe import storage_probe_forget

TEST_BUCKET = "gatehouse-test"
TEST_REGION = "us-east-1"


@dataclass(frozen=True)
class S3TestStorage:
    """The storage a test talks to, with shortcuts for putting objects under keys of its own."""

    endpoint_url: str
    bucket: str

    def key(self, name: str) -> str:
        """A key no other test uses: tests share one bucket for the whole session."""
        return f"tests/{uuid.uuid4().hex}/{name}"

    def put(self, key: str, body: bytes) -> storage.ObjectInfo:
        return storage.put_object(key=key, body=body)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    server = SeaweedFS(
        tmp_path_factory.mktemp("seaweedfs"),
        access_key=f"test-{secrets.token_hex(8)}",
        secret_key=secrets.token_hex(20),
    )
    with server:
        yield server


@pytest.fixture
def s3(settings, seaweedfs: SeaweedFS) -> Iterator[S3TestStorage]:
    settings.S3_ENDPOINT_URL = seaweedfs.endpoint_url
    settings.S3_BUCKET = TEST_BUCKET
    settings.S3_ACCESS_KEY_ID = seaweedfs.access_key
    settings.S3_SECRET_ACCESS_KEY = seaweedfs.secret_key
    settings.S3_REGION = TEST_REGION
    settings.S3_ADDRESSING_STYLE = "path"
    storage.clear_client_cache()
    storage_probe_forget()
    storage.ensure_bucket()
    yield S3TestStorage(endpoint_url=seaweedfs.endpoint_url, bucket=TEST_BUCKET)
    storage.clear_client_cache()
    storage_probe_forget()
