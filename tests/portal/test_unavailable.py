"""PostgreSQL unreachable: 503 with an explanation and Retry-After, never a 500, never a redirect to
storage without its download event and audit row (portal/unavailable.py).

In-process, the database fails at the worst moment: the statement that writes the download event and
its audit row, after the policy said yes and the URL was signed. Then for real: a gunicorn whose
DATABASE_URL points at a port where nothing listens.
"""

from __future__ import annotations

import contextlib
import os
import secrets

import httpx2
import pytest
from django.db import OperationalError, ProgrammingError, connection
from django.test import Client
from django.urls import Resolver404, resolve, reverse

from access.models import AuditEvent, DownloadEvent
from access.services.tokens import token_create
from portal.unavailable import MESSAGE, RETRY_AFTER_SECONDS
from releases.models import Tier
from tests.factories import TierFactory
from tests.portal.server import base_env, free_port, gunicorn_server
from tests.scenes import approved_grant, upload_artifact

BODY = os.urandom(10_000)
EXPLANATION = "cannot reach its database"


@pytest.fixture
def client():
    """A client that gets the response a user would, instead of the exception re-raised."""
    return Client(raise_request_exception=False)


@pytest.fixture
def artifact(s3, release):
    return upload_artifact(s3, release, "weights/model.safetensors", BODY)


@pytest.fixture
def tier(release, artifact):
    return TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION, artifacts=[artifact])


@pytest.fixture
def granted(tier, researcher, reviewer):
    return approved_grant(researcher, tier, reviewer)


def bearer(user) -> dict[str, str]:
    raw = token_create(user=user, name="script", scopes=["read", "download"])[1]
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@contextlib.contextmanager
def database_fails(when=lambda sql: True, error=OperationalError):
    """Every statement for which ``when(sql)`` holds fails as a dropped connection does."""

    def fail(execute, sql, params, many, context):
        if when(sql):
            raise error("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        yield


def writing_the_download(sql: str) -> bool:
    # access.audit.audit_record_with_row: one statement inserts the event and its audit row.
    return sql.startswith("WITH head AS")


@contextlib.contextmanager
def nothing_recorded():
    audit_rows = AuditEvent.objects.count()
    yield
    assert DownloadEvent.objects.count() == 0
    assert AuditEvent.objects.count() == audit_rows


def assert_unavailable(response):
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "Location" not in response


# --- The download routes, when the database fails on the write ------------------------------------


def test_download_page_answers_503_with_a_page_that_explains(client, granted, researcher, artifact):
    client.force_login(researcher)

    with nothing_recorded(), database_fails(when=writing_the_download):
        response = client.get(reverse("artifact-download", kwargs={"artifact_id": artifact.pk}))

    assert_unavailable(response)
    assert response["Content-Type"].startswith("text/html")
    assert MESSAGE in response.content.decode()


def test_download_page_answers_json_to_a_token_client(client, granted, researcher, artifact):
    headers = bearer(researcher)

    with nothing_recorded(), database_fails(when=writing_the_download):
        response = client.get(reverse("artifact-download", kwargs={"artifact_id": artifact.pk}), **headers)

    assert_unavailable(response)
    assert response.json() == {"error": "database_unavailable", "message": MESSAGE}


def test_api_download_url_answers_503_json(client, granted, researcher, artifact):
    headers = bearer(researcher)

    with nothing_recorded(), database_fails(when=writing_the_download):
        response = client.post(
            f"/api/v1/artifacts/{artifact.pk}/download-url", content_type="application/json", **headers
        )

    assert_unavailable(response)
    assert response.json() == {"error": "database_unavailable", "message": MESSAGE}


@pytest.mark.parametrize("method", ["head", "get"])
def test_hub_resolve_answers_503_in_the_hubs_terms(client, granted, researcher, artifact, method):
    headers = bearer(researcher)
    model = artifact.release.model
    path = f"/{model.organization.slug}/{model.slug}/resolve/main/{artifact.path}"

    with nothing_recorded(), database_fails(when=writing_the_download):
        response = getattr(client, method)(path, **headers)

    assert_unavailable(response)
    # huggingface_hub shows X-Error-Message (a HEAD has no body) and the body's "error".
    assert EXPLANATION in response["X-Error-Message"]
    if method == "get":
        assert response.json() == {"error": MESSAGE}


# --- Failures outside the view, and failures that are not an outage -------------------------------


def test_failure_while_rendering_the_404_page_is_503_too(client, researcher):
    """The 404 page asks the session who is signed in: an error handler, not a view, meets the outage."""
    client.force_login(researcher)

    with database_fails():
        response = client.get("/no/such/page/here/")

    assert_unavailable(response)
    assert MESSAGE in response.content.decode()


def test_api_failure_before_the_operation_is_503_json(client, researcher):
    """Authenticating the token is the first query: it fails inside django-ninja, which re-raises."""
    headers = bearer(researcher)

    with database_fails():
        response = client.get("/api/v1/me", **headers)

    assert_unavailable(response)
    assert response.json()["error"] == "database_unavailable"


def test_a_programming_error_stays_a_500(client, researcher):
    """Only an outage is worth a retry: a broken query is a bug and must look like one."""
    headers = bearer(researcher)

    with database_fails(error=ProgrammingError):
        response = client.get("/api/v1/me", **headers)

    assert response.status_code == 500
    assert "Retry-After" not in response


# --- For real: gunicorn with PostgreSQL unreachable -----------------------------------------------


@pytest.fixture(scope="module")
def site_without_database(tmp_path_factory):
    env = base_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/gatehouse",  # nothing listens there
        ALLOWED_HOSTS="127.0.0.1",
        # Storage is configured but down too: these tests are about the database.
        S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        S3_ACCESS_KEY_ID="gatehouse",
        S3_SECRET_ACCESS_KEY="not-used",  # noqa: S106
    )
    with gunicorn_server(env, tmp_path_factory.mktemp("gunicorn")) as url:
        yield url


TOKEN = {"Authorization": f"Bearer gh_{secrets.token_urlsafe(32)}"}


def test_pages_answer_503_with_an_explanation(site_without_database):
    catalogue = httpx2.get(f"{site_without_database}/")
    download = httpx2.get(f"{site_without_database}/artifacts/1/download", cookies={"sessionid": "x" * 32})

    for response in (catalogue, download):
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert "Location" not in response.headers
        assert MESSAGE in response.text


def test_api_answers_503_json(site_without_database):
    download_url = httpx2.post(
        f"{site_without_database}/api/v1/artifacts/1/download-url", headers=TOKEN, json=None
    )
    me = httpx2.get(f"{site_without_database}/api/v1/me", headers=TOKEN)

    for response in (download_url, me):
        assert response.status_code == 503, response.text
        assert response.json() == {"error": "database_unavailable", "message": MESSAGE}
        assert "Location" not in response.headers


def test_hub_routes_answer_503_in_the_hubs_terms(site_without_database):
    resolve_head = httpx2.head(
        f"{site_without_database}/acme/llama/resolve/main/model.safetensors", headers=TOKEN
    )
    model_info = httpx2.get(f"{site_without_database}/api/models/acme/llama", headers=TOKEN)

    for response in (resolve_head, model_info):
        assert response.status_code == 503
        assert EXPLANATION in response.headers["X-Error-Message"]
        assert "Location" not in response.headers


def test_readiness_probe_says_the_database_is_down(site_without_database):
    try:
        resolve("/readyz")
    except Resolver404:
        pytest.skip("/readyz is not routed yet")

    response = httpx2.get(f"{site_without_database}/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False
