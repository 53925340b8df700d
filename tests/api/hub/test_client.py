"""The real huggingface_hub client (and its ``hf download`` command) against the live portal and
SeaweedFS, with a Gatehouse token as the hub token: the files that land on disk have the
artifacts' sha256, every URL issued is a download event, and refusals arrive as the client's
own exceptions carrying Gatehouse's explanation."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from huggingface_hub import HfApi, close_session, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import _detect_agent

from access.models import AccessToken, DownloadEvent
from access.services.licenses import license_version_publish
from access.services.tokens import token_create
from releases.models import Tier
from tests.factories import ReleaseFactory, TierFactory
from tests.helpers import sha256
from tests.scenes import approved_grant, make_expired, revoke, upload_artifact

REPO = "acme/llama-lite"
V1 = {
    "config.json": b'{"hidden_size": 64, "num_hidden_layers": 2}\n',
    "weights/model.safetensors": os.urandom(300_000),
}
V2_WEIGHTS = os.urandom(200_000)


@pytest.fixture
def hub(monkeypatch, tmp_path, live_server, s3):
    """The client pointed at the live portal, with its home, cache and token file under tmp_path.

    The client reads its environment into huggingface_hub.constants at import, so the values
    that matter in this process are set there too; the endpoint is passed explicitly.
    """
    home = tmp_path / "hf-home"
    for name, value in {
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    # The client fetches a registry of AI agents from its default endpoint to build its user agent.
    monkeypatch.setattr(_detect_agent, "_registry", _detect_agent._EMPTY_REGISTRY)
    cache.clear()  # fresh rate-limit counters
    yield live_server.url
    # The client keeps its connections alive; each holds a live-server thread, and that thread a
    # database connection that would stop the test database from being dropped at the end.
    close_session()


@pytest.fixture
def v1(s3, release):
    """acme/llama-lite v1.0 with two real files, in one application tier."""
    artifacts = {path: upload_artifact(s3, release, path, body) for path, body in V1.items()}
    tier = TierFactory(
        release=release, name="Researchers", gate=Tier.Gate.APPLICATION, artifacts=artifacts.values()
    )
    return tier


def hub_token(user, scopes=("read", "download")) -> str:
    return token_create(user=user, name="hf", scopes=list(scopes))[1]


def download(hub, raw, filename="weights/model.safetensors", **options) -> Path:
    return Path(hf_hub_download(REPO, filename, endpoint=hub, token=raw, **options))


def test_whoami_names_the_tokens_owner_and_the_token(hub, researcher):
    me = HfApi(endpoint=hub, token=hub_token(researcher)).whoami()

    assert (me["name"], me["fullname"], me["emailVerified"]) == (researcher.email, researcher.full_name, True)
    assert me["auth"]["accessToken"]["displayName"] == "hf"
    assert me["auth"]["accessToken"]["scopes"] == ["download", "read"]


def test_model_info_shows_the_gate_and_only_the_files_the_user_may_download(
    hub, release, v1, researcher, reviewer, outsider
):
    approved_grant(researcher, v1, reviewer)

    granted = HfApi(endpoint=hub, token=hub_token(researcher)).model_info(REPO)
    refused = HfApi(endpoint=hub, token=hub_token(outsider)).model_info(REPO)

    assert (granted.id, granted.sha, granted.gated) == (REPO, release.revision, "manual")
    assert {(s.rfilename, s.lfs.sha256) for s in granted.siblings} == {(p, sha256(b)) for p, b in V1.items()}
    assert granted.gatehouse["tiers"][0]["status"] == "approved"
    assert (refused.gated, refused.siblings) == ("manual", [])
    assert refused.gatehouse["tiers"][0]["status"] == "not_requested"
    assert refused.gatehouse["tiers"][0]["url"] == f"{hub}/tiers/{v1.pk}/"


def test_list_repo_files_lists_the_release(hub, release, v1, researcher, reviewer):
    approved_grant(researcher, v1, reviewer)

    files = HfApi(endpoint=hub, token=hub_token(researcher)).list_repo_files(REPO, revision=release.revision)

    assert sorted(files) == sorted(V1)


@pytest.mark.parametrize("revision", ["revision", "version"])
def test_hf_hub_download_at_a_release_writes_its_exact_bytes_and_records_the_head(
    hub, tmp_path, release, v1, researcher, reviewer, revision
):
    grant = approved_grant(researcher, v1, reviewer)
    pinned = release.revision if revision == "revision" else release.version

    path = download(hub, hub_token(researcher), revision=pinned, cache_dir=tmp_path / "cache")

    assert sha256(path.read_bytes()) == sha256(V1["weights/model.safetensors"])
    assert path.parent.parent.name == release.revision  # snapshots/<commit>/weights/...
    event = DownloadEvent.objects.get()
    assert (event.artifact.path, event.grant, event.access_token.name) == (
        "weights/model.safetensors",
        grant,
        "hf",
    )


def test_main_is_the_newest_release_the_user_may_download(
    hub, tmp_path, s3, model, release, v1, researcher, reviewer
):
    approved_grant(researcher, v1, reviewer)
    v2 = ReleaseFactory(model=model, version="v2.0", published_at=release.published_at + timedelta(days=30))
    v2_tier = TierFactory(
        release=v2,
        gate=Tier.Gate.APPLICATION,
        artifacts=[upload_artifact(s3, v2, "weights/model.safetensors", V2_WEIGHTS)],
    )
    raw = hub_token(researcher)

    before = download(hub, raw, local_dir=tmp_path / "before")
    approved_grant(researcher, v2_tier, reviewer)
    after = download(hub, raw, local_dir=tmp_path / "after")
    pinned = download(hub, raw, revision=release.revision, local_dir=tmp_path / "pinned")

    assert sha256(before.read_bytes()) == sha256(V1["weights/model.safetensors"])
    assert sha256(after.read_bytes()) == sha256(V2_WEIGHTS)
    assert sha256(pinned.read_bytes()) == sha256(V1["weights/model.safetensors"])
    assert HfApi(endpoint=hub, token=raw).model_info(REPO).sha == v2.revision
    assert list(
        DownloadEvent.objects.order_by("pk").values_list("artifact__release__version", flat=True)
    ) == [
        "v1.0",
        "v2.0",
        "v1.0",
    ]


def test_snapshot_download_fetches_a_whole_release(hub, tmp_path, release, v1, researcher, reviewer):
    approved_grant(researcher, v1, reviewer)

    folder = Path(
        snapshot_download(
            REPO, revision="main", endpoint=hub, token=hub_token(researcher), cache_dir=tmp_path
        )
    )

    assert folder.name == release.revision
    assert {path: sha256((folder / path).read_bytes()) for path in V1} == {
        p: sha256(b) for p, b in V1.items()
    }
    assert sorted(DownloadEvent.objects.values_list("artifact__path", flat=True)) == sorted(V1)


def hf_download(hub: str, raw: str, target: Path, **environment: str) -> subprocess.CompletedProcess:
    """``HF_ENDPOINT=<portal> HF_TOKEN=<token> hf download acme/llama-lite --local-dir <target>``."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "hf"), "download", REPO, "--local-dir", str(target)],
        env={
            **os.environ,
            "HF_ENDPOINT": hub,
            "HF_TOKEN": raw,
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            **environment,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_hf_download_command_downloads_the_release(hub, tmp_path, release, v1, researcher, reviewer):
    approved_grant(researcher, v1, reviewer)
    target = tmp_path / "llama-lite"

    finished = hf_download(hub, hub_token(researcher), target)

    assert finished.returncode == 0, finished.stderr
    assert {path: sha256((target / path).read_bytes()) for path in V1} == {
        p: sha256(b) for p, b in V1.items()
    }
    assert DownloadEvent.objects.filter(user=researcher).count() == len(V1)


def test_hf_download_command_without_access_says_why_and_where_to_apply(
    hub, tmp_path, release, v1, researcher
):
    raw = hub_token(researcher)

    short = hf_download(hub, raw, tmp_path / "short")
    # The command prints only its own line for a gated repository; its debug mode shows the
    # exception, which carries Gatehouse's explanation.
    debug = hf_download(hub, raw, tmp_path / "debug", HF_DEBUG="1")

    assert short.returncode == debug.returncode == 1
    assert "Access denied. Model 'acme/llama-lite' requires approval." in short.stderr
    assert "GatedRepoError" in debug.stderr
    assert (
        f"You do not have access to this file. Request access on the tier's page: {hub}/tiers/{v1.pk}/"
        in (debug.stderr)
    )
    assert not (tmp_path / "short" / "config.json").exists()
    assert not DownloadEvent.objects.exists()


def test_without_access_the_client_raises_gated_repo_with_the_reason_and_the_page(
    hub, tmp_path, release, v1, researcher
):
    raw = hub_token(researcher)

    with pytest.raises(GatedRepoError) as one_file:
        download(hub, raw, cache_dir=tmp_path)
    with pytest.raises(GatedRepoError) as snapshot:
        snapshot_download(REPO, endpoint=hub, token=raw, cache_dir=tmp_path)

    for raised in (one_file, snapshot):
        assert "You do not have access to this file" in str(raised.value)
        assert f"{hub}/tiers/{v1.pk}/" in str(raised.value)
    assert not DownloadEvent.objects.exists()


@pytest.mark.parametrize(
    ("arrange", "says", "page"),
    [
        (
            lambda tier, user, reviewer: make_expired(approved_grant(user, tier, reviewer)),
            "expired on",
            "/tiers/{}/",
        ),
        (
            lambda tier, user, reviewer: revoke(
                approved_grant(user, tier, reviewer), reviewer, "Leaked weights."
            ),
            "Reason: Leaked weights.",
            "/tiers/{}/",
        ),
        (
            lambda tier, user, reviewer: (
                approved_grant(user, tier, reviewer),
                license_version_publish(
                    license=tier.license, text="New terms.", requires_reacceptance=True, actor=reviewer
                ),
            ),
            "The license changed; accept the new version here",
            "/tiers/{}/reaccept/",
        ),
    ],
    ids=["expired", "revoked", "license-changed"],
)
def test_a_lapsed_grant_explains_itself_through_the_client(
    hub, tmp_path, release, v1, researcher, reviewer, arrange, says, page
):
    arrange(v1, researcher, reviewer)

    with pytest.raises(GatedRepoError) as raised:
        download(hub, hub_token(researcher), revision=release.revision, cache_dir=tmp_path)

    assert says in str(raised.value)
    assert hub + page.format(v1.pk) in str(raised.value)
    assert not DownloadEvent.objects.exists()


def test_unknown_model_revision_and_file_raise_the_clients_errors(
    hub, tmp_path, release, v1, researcher, reviewer
):
    approved_grant(researcher, v1, reviewer)
    raw = hub_token(researcher)
    api = HfApi(endpoint=hub, token=raw)

    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/no-such-model")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/no-such-model", "config.json", endpoint=hub, token=raw, cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        download(hub, raw, revision="v9.9", cache_dir=tmp_path)
    with pytest.raises(RemoteEntryNotFoundError):
        download(hub, raw, filename="no-such-file.bin", cache_dir=tmp_path)
    assert not DownloadEvent.objects.exists()


def test_an_expired_token_is_refused_with_the_reason(hub, tmp_path, release, v1, researcher, reviewer):
    approved_grant(researcher, v1, reviewer)
    raw = hub_token(researcher)
    AccessToken.objects.filter(user=researcher).update(expires_at=release.published_at)

    with pytest.raises(HfHubHTTPError) as raised:
        download(hub, raw, cache_dir=tmp_path)

    assert raised.value.response.status_code == 401
    assert "The access token expired on" in str(raised.value)
    assert not DownloadEvent.objects.exists()


def test_anonymous_callers_see_an_open_models_files_but_need_a_token_to_download(hub, tmp_path, release, s3):
    artifact = upload_artifact(s3, release, "config.json", V1["config.json"])
    TierFactory(release=release, gate=Tier.Gate.OPEN, artifacts=[artifact])

    info = HfApi(endpoint=hub, token=False).model_info(REPO)
    with pytest.raises(HfHubHTTPError) as raised:
        hf_hub_download(REPO, "config.json", endpoint=hub, token=False, cache_dir=tmp_path)

    assert (info.gated, [s.rfilename for s in info.siblings]) == (False, ["config.json"])
    assert raised.value.response.status_code == 401
    assert "HF_TOKEN" in str(raised.value)
