"""The hub routes over plain HTTP, against a real SeaweedFS: the headers huggingface_hub relies
on, one audited download event per URL issued (HEAD included), the error codes the client turns
into its exceptions, and the query budget of resolve."""

from __future__ import annotations

import os
from datetime import timedelta
from urllib.parse import urlsplit

import httpx2
import pytest
from django.core.cache import cache
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from huggingface_hub.utils import hf_raise_for_status

from access.models import AuditEvent, DownloadEvent
from access.services.licenses import license_version_publish
from access.services.tokens import token_create, token_revoke
from portal import storage
from portal.storage_probe import storage_probe_forget
from releases.models import Release, Tier
from tests.factories import ReleaseFactory, TierFactory
from tests.helpers import download_urls_counted, nothing_changes
from tests.scenes import approved_grant, fetch, make_expired, revoke, sha256, upload_artifact

CONFIG = b'{"hidden_size": 64, "num_hidden_layers": 2}\n'
WEIGHTS = os.urandom(50_000)
# The token, the file's copies with their tiers, the user's grants, then one statement writing the
# event and its audit row (its own transaction: no BEGIN, COMMIT or savepoint).
QUERIES_PER_URL = 4


@pytest.fixture(autouse=True)
def fresh_rate_limit_counters():
    cache.clear()


@pytest.fixture
def files(s3, release):
    return {
        "config.json": upload_artifact(s3, release, "config.json", CONFIG),
        "weights/model.safetensors": upload_artifact(s3, release, "weights/model.safetensors", WEIGHTS),
    }


@pytest.fixture
def tier(release, files):
    return TierFactory(
        release=release, name="Researchers", gate=Tier.Gate.APPLICATION, artifacts=list(files.values())
    )


def hub_token(user, scopes=("read", "download")) -> str:
    return token_create(user=user, name="hf", scopes=list(scopes))[1]


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def resolve_url(revision: str, path: str = "weights/model.safetensors") -> str:
    return f"/acme/llama-lite/resolve/{revision}/{path}"


def test_head_and_get_redirect_to_storage_with_hub_metadata_and_each_is_an_event(
    client, s3, release, tier, files, researcher, reviewer
):
    grant = approved_grant(researcher, tier, reviewer)
    raw = hub_token(researcher)

    head = client.head(resolve_url(release.revision), **bearer(raw))
    got = client.get(resolve_url("v1.0"), **bearer(raw))

    weights = files["weights/model.safetensors"]
    for response in (head, got):
        assert response.status_code == 302
        assert response["X-Repo-Commit"] == release.revision
        assert response["X-Linked-Etag"] == response["ETag"] == f'"{sha256(WEIGHTS)}"'
        assert response["X-Linked-Size"] == str(len(WEIGHTS))
        assert response["Cache-Control"] == "no-store"
        location = response["Location"]
        assert urlsplit(location).netloc == urlsplit(s3.endpoint_url).netloc
        status, _, body = fetch(location)
        assert (status, sha256(body)) == (200, weights.sha256)
    events = list(DownloadEvent.objects.order_by("pk"))
    assert [(e.artifact, e.grant, e.access_token.name) for e in events] == [(weights, grant, "hf")] * 2
    audits = AuditEvent.objects.filter(action="artifact.downloaded").order_by("pk")
    assert [audit.target_id for audit in audits] == [event.pk for event in events]


@pytest.mark.parametrize("revision", ["main", "pinned"])
def test_resolve_costs_four_queries_whatever_the_releases_and_grants(
    client, s3, model, release, tier, files, researcher, reviewer, django_assert_max_num_queries, revision
):
    approved_grant(researcher, tier, reviewer)
    raw = hub_token(researcher)
    url = resolve_url(release.revision if revision == "pinned" else "main")
    assert client.head(url, **bearer(raw)).status_code == 302  # records the token's last use

    def queries() -> int:
        with django_assert_max_num_queries(QUERIES_PER_URL) as captured:
            assert client.head(url, **bearer(raw)).status_code == 302
        return len(captured.captured_queries)

    few = queries()
    for number in range(2, 8):
        older = ReleaseFactory(
            model=model, version=f"v0.{number}", published_at=release.published_at - timedelta(days=number)
        )
        copy = upload_artifact(s3, older, "weights/model.safetensors", WEIGHTS)
        approved_grant(researcher, TierFactory(release=older, artifacts=[copy]), reviewer)
        approved_grant(researcher, TierFactory(release=release, artifacts=[files["config.json"]]), reviewer)
    many = queries()

    assert few == QUERIES_PER_URL
    assert many == few


@pytest.mark.parametrize(
    ("arrange", "says", "page"),
    [
        (lambda tier, user, reviewer: None, "You do not have access to this file", "/tiers/{tier}/"),
        (
            lambda tier, user, reviewer: revoke(
                approved_grant(user, tier, reviewer), reviewer, "Leaked weights."
            ),
            "was revoked. Reason: Leaked weights.",
            "/tiers/{tier}/",
        ),
        (
            lambda tier, user, reviewer: make_expired(approved_grant(user, tier, reviewer)),
            "Your access to Researchers expired on",
            "/tiers/{tier}/",
        ),
        (
            lambda tier, user, reviewer: (
                approved_grant(user, tier, reviewer),
                license_version_publish(
                    license=tier.license, text="New terms.", requires_reacceptance=True, actor=reviewer
                ),
            ),
            "The license changed; accept the new version here",
            "/tiers/{tier}/reaccept/",
        ),
    ],
    ids=["no-grant", "revoked", "expired", "license-changed"],
)
@pytest.mark.parametrize("method", ["head", "get"])
def test_refusal_is_gated_repo_with_the_reason_and_the_page_to_act_on(
    client, release, tier, files, researcher, reviewer, arrange, says, page, method
):
    arrange(tier, researcher, reviewer)
    raw = hub_token(researcher)

    with nothing_changes():
        response = getattr(client, method)(resolve_url("main"), **bearer(raw))

    assert response.status_code == 403
    assert response["X-Error-Code"] == "GatedRepo"
    message = response["X-Error-Message"]
    assert says in message
    assert message.endswith(f"http://testserver{page.format(tier=tier.pk)}")
    assert "Location" not in response


def test_message_header_is_ascii_and_the_body_keeps_the_exact_reason(
    client, release, tier, files, researcher, reviewer
):
    revoke(approved_grant(researcher, tier, reviewer), reviewer, "Partagé publiquement —\nvoir le ticket.")

    response = client.get(resolve_url("main"), **bearer(hub_token(researcher)))

    assert "Reason: Partage publiquement voir le ticket." in response["X-Error-Message"]
    assert "Reason: Partagé publiquement —\nvoir le ticket." in response.json()["error"]


def test_unknown_model_revision_and_file_have_the_hub_codes(client, model, release, tier, files, researcher):
    ReleaseFactory(
        model__organization=model.organization, model__slug="draft-only", status=Release.Status.DRAFT
    )
    raw = hub_token(researcher)

    cases = {
        "/acme/nothing-here/resolve/main/config.json": "RepoNotFound",
        "/acme/draft-only/resolve/main/config.json": "RepoNotFound",
        "/api/models/acme/nothing-here": "RepoNotFound",
        resolve_url("v9.9"): "RevisionNotFound",
        "/api/models/acme/llama-lite/revision/v9.9": "RevisionNotFound",
        resolve_url("main", "missing.bin"): "EntryNotFound",
        resolve_url(release.revision, "missing.bin"): "EntryNotFound",
        f"/api/models/acme/llama-lite/tree/{release.revision}/missing": "EntryNotFound",
    }
    with nothing_changes():
        answers = {url: client.get(url, **bearer(raw)) for url in cases}

    assert {url: (r.status_code, r["X-Error-Code"]) for url, r in answers.items()} == {
        url: (404, code) for url, code in cases.items()
    }
    # The client records a missing file under the commit it was looked for at.
    assert answers[resolve_url(release.revision, "missing.bin")]["X-Repo-Commit"] == release.revision


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        (lambda token, raw: "gh_" + "x" * 43, "not valid"),
        (lambda token, raw: token_revoke(token_id=token.pk, user=token.user) and raw, "was revoked"),
        (
            lambda token, raw: (
                type(token).objects.filter(pk=token.pk).update(expires_at=token.created_at) and raw
            ),
            "expired on",
        ),
    ],
    ids=["unknown", "revoked", "expired"],
)
def test_bad_tokens_are_401_with_the_reason(client, release, tier, files, researcher, spoil, says):
    token, raw = token_create(user=researcher, name="hf", scopes=["read", "download"])
    raw = spoil(token, raw)

    with nothing_changes():
        responses = [
            client.head(resolve_url("main"), **bearer(raw)),
            client.get("/api/models/acme/llama-lite", **bearer(raw)),
            client.get("/api/whoami-v2", **bearer(raw)),
        ]

    for response in responses:
        assert response.status_code == 401
        assert says in response["X-Error-Message"]
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_downloading_needs_an_account_even_for_an_open_tier(client, release, files):
    TierFactory(release=release, gate=Tier.Gate.OPEN, artifacts=list(files.values()))

    with nothing_changes():
        response = client.head(resolve_url("main"))

    assert response.status_code == 401
    assert "HF_TOKEN" in response["X-Error-Message"]
    assert "http://testserver/me/tokens/" in response["X-Error-Message"]


def test_tokens_need_the_scope_of_the_route(client, release, tier, files, researcher, reviewer):
    approved_grant(researcher, tier, reviewer)

    read_token, download_token = hub_token(researcher, ["read"]), hub_token(researcher, ["download"])

    with nothing_changes():
        read_only = client.head(resolve_url("main"), **bearer(read_token))
        download_only = client.get("/api/models/acme/llama-lite", **bearer(download_token))

    assert (read_only.status_code, download_only.status_code) == (403, 403)
    assert "lacks the 'download' scope" in read_only["X-Error-Message"]
    assert "lacks the 'read' scope" in download_only["X-Error-Message"]


def test_only_get_and_head_are_answered(client, release, tier, files, researcher, reviewer):
    approved_grant(researcher, tier, reviewer)
    raw = hub_token(researcher)

    with nothing_changes():
        response = client.post(resolve_url("main"), **bearer(raw))

    assert (response.status_code, response["Allow"]) == (405, "GET, HEAD")


def test_model_info_lists_only_the_files_the_callers_tiers_cover(
    client, release, tier, files, researcher, reviewer, outsider
):
    TierFactory(release=release, name="Public", gate=Tier.Gate.OPEN, artifacts=[files["config.json"]])
    approved_grant(researcher, tier, reviewer)

    def siblings(**headers) -> list[str]:
        body = client.get("/api/models/acme/llama-lite", **headers).json()
        assert (body["id"], body["sha"], body["gated"]) == ("acme/llama-lite", release.revision, "manual")
        return [sibling["rfilename"] for sibling in body["siblings"]]

    assert siblings(**bearer(hub_token(researcher))) == ["config.json", "weights/model.safetensors"]
    assert siblings(**bearer(hub_token(outsider))) == ["config.json"]
    assert siblings() == ["config.json"]


def test_model_info_reports_each_tiers_standing_and_the_lfs_sha256(client, release, tier, files, researcher):
    body = client.get("/api/models/acme/llama-lite/revision/v1.0", **bearer(hub_token(researcher))).json()

    assert body["siblings"] == []
    [status] = body["gatehouse"]["tiers"]
    assert (status["name"], status["gate"], status["status"]) == (
        "Researchers",
        "application",
        "not_requested",
    )
    assert status["url"] == f"http://testserver/tiers/{tier.pk}/"
    assert body["gatehouse"]["releases"] == [
        {"version": "v1.0", "revision": release.revision, "publishedAt": body["lastModified"]}
    ]


def test_gated_value_follows_the_gates(client, release, files):
    public = TierFactory(release=release, gate=Tier.Gate.OPEN, artifacts=list(files.values()))
    assert client.get("/api/models/acme/llama-lite").json()["gated"] is False

    Tier.objects.filter(pk=public.pk).update(gate=Tier.Gate.CLICK_THROUGH)
    assert client.get("/api/models/acme/llama-lite").json()["gated"] == "auto"


def test_tree_lists_a_folder_at_a_time_unless_recursive(client, release, tier, files, researcher, reviewer):
    approved_grant(researcher, tier, reviewer)
    headers = bearer(hub_token(researcher))
    base = f"/api/models/acme/llama-lite/tree/{release.revision}"

    root = client.get(base, **headers).json()
    folder = client.get(f"{base}/weights", **headers).json()
    everything = client.get(f"{base}?recursive=true&expand=true", **headers).json()

    assert [(entry["type"], entry["path"]) for entry in root] == [
        ("file", "config.json"),
        ("directory", "weights"),
    ]
    assert [entry["path"] for entry in folder] == ["weights/model.safetensors"]
    assert [entry["path"] for entry in everything] == ["config.json", "weights", "weights/model.safetensors"]
    weights = everything[-1]
    assert (weights["size"], weights["lfs"]["oid"]) == (len(WEIGHTS), sha256(WEIGHTS))
    assert weights["lastCommit"]["id"] == release.revision


def test_tree_without_access_is_gated_and_anonymous_is_asked_for_a_token(
    client, release, tier, files, researcher
):
    as_researcher = client.get("/api/models/acme/llama-lite/tree/main", **bearer(hub_token(researcher)))
    anonymous = client.get("/api/models/acme/llama-lite/tree/main")

    assert (as_researcher.status_code, as_researcher["X-Error-Code"]) == (403, "GatedRepo")
    assert as_researcher["X-Error-Message"].endswith(f"http://testserver/tiers/{tier.pk}/")
    assert (anonymous.status_code, anonymous["X-Error-Code"]) == (401, "GatedRepo")
    assert "HF_TOKEN" in anonymous["X-Error-Message"]


@pytest.mark.parametrize(
    ("path", "error"),
    [("/acme/llama-lite/resolve/main/weights/model.safetensors", GatedRepoError), ("/api/models/x/y", None)],
)
def test_the_client_reads_our_errors_the_same_on_an_https_endpoint(
    client, release, tier, files, researcher, path, error
):
    """Over https the client maps some statuses by URL shape (a 401 on a repo URL reads as
    "not found"): check what it makes of the headers as a production deployment would send them."""
    answer = client.head(path, **bearer(hub_token(researcher)))
    request = httpx2.Request("HEAD", f"https://gatehouse.example.org{path}")
    response = httpx2.Response(answer.status_code, headers=dict(answer.headers), request=request)

    with pytest.raises(error or RepositoryNotFoundError) as raised:
        hf_raise_for_status(response)

    assert answer["X-Error-Message"] in str(raised.value)


def test_rate_limit_is_answered_in_the_hubs_terms(
    client, settings, release, tier, files, researcher, reviewer
):
    approved_grant(researcher, tier, reviewer)
    raw = hub_token(researcher)
    settings.API_RATE_LIMIT_PER_MINUTE = 2

    allowed = [client.head(resolve_url("main"), **bearer(raw)).status_code for _ in range(2)]
    with nothing_changes():
        limited = client.head(resolve_url("main"), **bearer(raw))

    assert allowed == [302, 302]
    assert limited.status_code == 429
    assert "try again in" in limited["X-Error-Message"]
    assert 1 <= int(limited["Retry-After"]) <= 60


def test_the_client_finds_no_agent_registry_to_apply(client):
    assert client.get("/api/agent-harnesses").json() == {"standardEnvVars": [], "harnesses": {}}


@pytest.mark.parametrize("method", ["head", "get"])
def test_store_down_is_503_for_the_client_and_nothing_recorded(
    client, settings, release, tier, files, researcher, reviewer, method
):
    approved_grant(researcher, tier, reviewer)
    raw = hub_token(researcher)
    settings.S3_ENDPOINT_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    storage.clear_client_cache()
    storage_probe_forget()

    with nothing_changes():
        response = getattr(client, method)(resolve_url("main"), **bearer(raw))

    assert response.status_code == 503
    assert "Location" not in response
    assert response["Retry-After"] == "60"
    assert "not answering" in response["X-Error-Message"]
    assert not DownloadEvent.objects.exists()


def test_each_resolve_counts_one_issued_url_for_the_metrics(
    client, release, tier, files, researcher, reviewer
):
    before = download_urls_counted("hub")
    approved_grant(researcher, tier, reviewer)
    raw = hub_token(researcher)
    assert client.head(resolve_url("main"), **bearer(raw)).status_code == 302
    assert client.get(resolve_url("main"), **bearer(raw)).status_code == 302

    assert download_urls_counted("hub") == before + 2
