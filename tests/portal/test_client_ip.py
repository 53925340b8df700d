"""The client's address behind TRUSTED_PROXY_COUNT proxies (portal/client_ip.py): the same entry of
X-Forwarded-For that allauth's rate limits use, and the one a download event records."""

from __future__ import annotations

import os

import pytest
from allauth.account.adapter import get_adapter
from django.test import RequestFactory
from django.urls import reverse

from access.models import DownloadEvent
from portal.client_ip import client_ip
from releases.models import Tier
from tests.factories import TierFactory
from tests.scenes import approved_grant, upload_artifact

PROXY = "10.0.0.2"  # REMOTE_ADDR as gunicorn sees it behind nginx


def request_from(forwarded_for: str | None = None, remote_addr: str = PROXY):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote_addr, **headers)


def test_without_a_trusted_proxy_the_header_is_ignored(settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 0

    assert client_ip(request_from("198.51.100.66", remote_addr="203.0.113.7")) == "203.0.113.7"


@pytest.mark.parametrize(
    ("proxy_count", "forwarded_for", "client"),
    [
        # nginx appends the address it saw: whatever the client wrote itself stays to the left.
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "198.51.100.66, 203.0.113.7", "203.0.113.7"),
        (2, "198.51.100.66, 203.0.113.7, 10.0.0.9", "203.0.113.7"),
        (1, "2001:db8::7", "2001:db8::7"),
    ],
)
def test_behind_proxies_the_client_is_counted_from_the_right(settings, proxy_count, forwarded_for, client):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = proxy_count
    request = request_from(forwarded_for)

    assert client_ip(request) == client
    # The address allauth rate-limits is the one Gatehouse records.
    assert get_adapter(request).get_client_ip(request) == client


@pytest.mark.parametrize("forwarded_for", [None, "", "203.0.113.7", "unknown, 203.0.113.7"])
def test_no_address_rather_than_a_guess(settings, forwarded_for):
    """Fewer entries than proxies (the request bypassed one) or an entry that is no address: None, not
    the proxy's address and not something the address column would refuse."""
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 2

    assert client_ip(request_from(forwarded_for)) is None


def test_a_download_records_the_clients_address_not_the_proxys(
    client, settings, s3, release, researcher, reviewer
):
    artifact = upload_artifact(s3, release, "weights/model.safetensors", os.urandom(1000))
    tier = TierFactory(release=release, gate=Tier.Gate.APPLICATION, artifacts=[artifact])
    approved_grant(researcher, tier, reviewer)
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    client.force_login(researcher)

    response = client.get(
        reverse("artifact-download", kwargs={"artifact_id": artifact.pk}),
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="198.51.100.66, 203.0.113.7",
    )

    assert response.status_code == 302
    assert DownloadEvent.objects.get().ip_address == "203.0.113.7"
