"""Assertions and checks shared by the tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from access.models import (
    AccessToken,
    Application,
    AuditEvent,
    DownloadEvent,
    Grant,
    Invitation,
    LicenseAcceptance,
    Review,
)
from releases.models import Artifact, Release, Tier

COUNTED_MODELS = (
    Application,
    Grant,
    LicenseAcceptance,
    AuditEvent,
    Review,
    Invitation,
    AccessToken,
    DownloadEvent,
    Release,
    Artifact,
    Tier,
)


def sha256(data: bytes) -> str:
    """The hex digest a user compares with the one the portal shows."""
    return hashlib.sha256(data).hexdigest()


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in COUNTED_MODELS}


@contextmanager
def nothing_changes() -> Iterator[None]:
    """Wrap a refused call: not one application, grant, acceptance, review, audit or release row appears."""
    before = row_counts()
    yield
    assert row_counts() == before


def last_audit_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def audit_actions(since: int = 0) -> list[str]:
    """The actions of the audit events written after event ``since``, in order."""
    return list(AuditEvent.objects.filter(pk__gt=since).order_by("pk").values_list("action", flat=True))


def download_urls_counted(route: str) -> float:
    """This process's ``gatehouse_download_urls_issued_total`` for ``route`` (page, api, hub)."""
    from portal.metrics import DOWNLOAD_URLS

    return sum(
        sample.value
        for family in DOWNLOAD_URLS.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels == {"route": route}
    )
