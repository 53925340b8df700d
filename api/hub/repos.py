"""huggingface_hub's repository routes: whoami, model info, file trees and resolve.

With ``HF_ENDPOINT`` set to the portal and a Gatehouse token as the hub token, ``HfApi().whoami()``,
``model_info()``, ``list_repo_files()``, ``hf_hub_download()``, ``snapshot_download()`` and
``hf download`` work. What the client sees of a model is what the caller's tiers cover:

- A model exists for the client once it has a published release; otherwise ``RepoNotFound``.
- A revision is a published release's ``revision`` (40 hex digits), its version (``v1.0``), or
  ``main``: the newest published release of which the caller may download at least one file now
  (the newest release if there is none, so that model info still answers and the tree says why).
- Model info's ``siblings`` and the tree list only the files of that release the caller may
  download now. Model info always answers, with the hub's ``gated`` and, under ``gatehouse``,
  the caller's standing on each tier; a tree with nothing the caller may have answers the
  client's gated-repository error with the policy's reason and the page to act on.
- resolve (HEAD and GET) issues each URL through access.services.downloads (a DownloadEvent and
  its audit row every time, HEAD included: the client takes the redirect target from its HEAD)
  and answers 302 to the presigned URL with ``X-Repo-Commit``, ``X-Linked-Etag`` (the quoted
  sha256), ``X-Linked-Size`` and ``ETag``. At ``main`` a path resolves to the newest release's
  copy the caller may download. Four statements with a token.

Metadata may be read anonymously (showing only the files of open tiers); downloading needs an
account even for open tiers, since every download event names its user.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import wraps

from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse

from access import download_policy, policy
from access.models import AccessToken
from access.selectors import downloadable_artifacts, standings_for_tiers
from access.services.downloads import (
    DownloadRefused,
    DownloadsUnavailable,
    download_issue,
    download_issue_newest,
)
from access.views.common import client_ip
from api.auth import authenticate_request
from api.errors import ApiError
from api.hub.protocol import (
    ENTRY_NOT_FOUND,
    MAIN,
    REPO_NOT_FOUND,
    REVISION_NOT_FOUND,
    HubError,
    gated_error,
    gated_value,
    hub_datetime,
    hub_error_from_api,
    hub_error_response,
    not_found,
    sibling,
    tree_entries,
)
from api.tiers import gate_status_code
from portal.metrics import download_url_issued
from releases.models import Artifact, Model, Release, Tier
from releases.selectors import organizations_with_roles

READ = AccessToken.Scope.READ
DOWNLOAD = AccessToken.Scope.DOWNLOAD


def hub_view(scope: str, *, required: bool):
    """Authenticate for ``scope`` and answer every refusal in the hub's error shape. The view
    gets the user (AnonymousUser when allowed) and the token (None for a session)."""

    def decorate(view):
        @wraps(view)
        def wrapper(request: HttpRequest, **kwargs):
            try:
                if request.method not in ("GET", "HEAD"):
                    raise HubError(
                        405, "This route answers GET and HEAD only.", headers={"Allow": "GET, HEAD"}
                    )
                try:
                    caller = authenticate_request(request, scope=scope, required=required)
                except ApiError as error:
                    raise hub_error_from_api(request, error) from None
                if caller is None:
                    return view(request, request.user, None, **kwargs)
                return view(request, caller.user, caller.token, **kwargs)
            except HubError as error:
                return hub_error_response(request, error)

        return wrapper

    return decorate


def _published_releases(org_slug: str, model_slug: str):
    return Release.objects.filter(
        model__organization__slug=org_slug, model__slug=model_slug, status=Release.Status.PUBLISHED
    ).order_by("-published_at", "-pk")


def _unknown_model(org_slug: str, model_slug: str) -> HubError:
    return not_found(REPO_NOT_FOUND, f"There is no model {org_slug}/{model_slug} with a published release.")


@dataclass(frozen=True)
class Repo:
    """A model's published releases and, for each file, whether the caller may download it now."""

    model: Model
    releases: list[Release]  # newest first
    files: dict[int, list[Artifact]]  # release id -> the files some tier includes, by path
    tiers_of: dict[int, list[Tier]]  # artifact id -> the tiers that include it
    decisions: dict[int, download_policy.DownloadDecision]  # artifact id -> the policy's answer

    def downloadable(self, release: Release) -> list[Artifact]:
        return [artifact for artifact in self.files[release.pk] if self.decisions[artifact.pk].allowed]

    def refusal(self, artifacts: list[Artifact]) -> download_policy.DownloadDecision | None:
        return next(
            (self.decisions[a.pk] for a in artifacts if not self.decisions[a.pk].allowed),
            None,
        )

    def release_at(self, revision: str) -> Release:
        if revision == MAIN:
            return next(
                (release for release in self.releases if self.downloadable(release)), self.releases[0]
            )
        for field in ("revision", "version"):
            for release in self.releases:
                if getattr(release, field) == revision:
                    return release
        raise not_found(REVISION_NOT_FOUND, f"{self.model.full_slug} has no published release '{revision}'.")


def repo_load(user, org_slug: str, model_slug: str) -> Repo:
    """Three queries with a token (two when there are no grants to read), whatever the number of
    releases and files."""
    releases = list(_published_releases(org_slug, model_slug).select_related("model__organization"))
    if not releases:
        raise _unknown_model(org_slug, model_slug)
    if user.is_authenticated:
        # Read once for all the files below (free after token authentication).
        policy.remember_email_verified(user, policy.has_verified_email(user))
    files: dict[int, list[Artifact]] = defaultdict(list)
    tiers_of: dict[int, list[Tier]] = {}
    for artifact, tiers in downloadable_artifacts(release__model=releases[0].model):
        files[artifact.release_id].append(artifact)
        tiers_of[artifact.pk] = tiers
    gated_tiers = {
        tier.pk: tier
        for tiers in tiers_of.values()
        for tier in tiers
        if tier.is_open and tier.gate != Tier.Gate.OPEN
    }
    grants = []
    if gated_tiers and policy.has_verified_email(user):
        grants = list(download_policy.download_grants(user, list(gated_tiers.values())))
    decisions = {
        artifact.pk: download_policy.download_decision(
            user, artifact, tiers=tiers_of[artifact.pk], grants=grants
        )
        for artifacts in files.values()
        for artifact in artifacts
    }
    return Repo(releases[0].model, releases, files, tiers_of, decisions)


@hub_view(READ, required=True)
def whoami(request: HttpRequest, user, token: AccessToken | None):
    """The hub's ``whoami-v2``: the token's owner as ``name`` (their e-mail address, which is
    unique here), their organizations, and the token's name, scopes and expiry."""
    organizations = [
        {
            "type": "org",
            "id": str(organization.pk),
            "name": organization.slug,
            "fullname": organization.name,
            # One membership, hence one role, per organization (releases.models.Membership).
            "roleInOrg": min(roles),
            "gatehouseRoles": sorted(roles),
        }
        for organization, roles in organizations_with_roles(user)
    ]
    if token is not None:
        auth = {
            "type": "access_token",
            "accessToken": {
                "displayName": token.name,
                "role": "fineGrained",
                "createdAt": hub_datetime(token.created_at),
                "expiresAt": hub_datetime(token.expires_at),
                "scopes": token.scopes,
            },
        }
    else:
        auth = {"type": "session"}
    return _json(
        {
            "type": "user",
            "id": str(user.pk),
            "name": user.email,
            "fullname": user.full_name,
            "email": user.email,
            "emailVerified": policy.has_verified_email(user),
            "isPro": False,
            "canPay": False,
            "orgs": organizations,
            "auth": auth,
        }
    )


@hub_view(READ, required=False)
def model_info(request: HttpRequest, user, token, org_slug: str, model_slug: str, revision: str = MAIN):
    """``model_info()`` / ``repo_info()``: the release at ``revision`` as the caller sees it."""
    repo = repo_load(user, org_slug, model_slug)
    release = repo.release_at(revision)
    files = repo.files[release.pk]
    tiers = list({tier.pk: tier for artifact in files for tier in repo.tiers_of[artifact.pk]}.values())
    standings = standings_for_tiers(user, tiers)
    model = repo.model
    return _json(
        {
            "_id": f"gatehouse-model-{model.pk}",
            "id": model.full_slug,
            "modelId": model.full_slug,
            "author": model.organization.slug,
            "sha": release.revision,
            "lastModified": hub_datetime(release.published_at),
            "createdAt": hub_datetime(model.created_at),
            "private": False,
            "disabled": False,
            "gated": gated_value(files, repo.tiers_of),
            "tags": [],
            "siblings": [sibling(artifact) for artifact in repo.downloadable(release)],
            "gatehouse": {
                "url": request.build_absolute_uri(model.get_absolute_url()),
                "release": release.version,
                "revision": release.revision,
                "releases": [
                    {
                        "version": r.version,
                        "revision": r.revision,
                        "publishedAt": hub_datetime(r.published_at),
                    }
                    for r in repo.releases
                ],
                "tiers": [_tier_status(request, tier, standings[tier.pk]) for tier in tiers],
            },
        }
    )


def _tier_status(request: HttpRequest, tier: Tier, standing: policy.TierStanding) -> dict:
    return {
        "id": tier.pk,
        "name": tier.name,
        "gate": tier.gate,
        "status": gate_status_code(standing),
        "label": standing.label,
        "detail": standing.detail,
        "date": hub_datetime(standing.date),
        "url": request.build_absolute_uri(reverse("tier-detail", kwargs={"tier_id": tier.pk})),
    }


@hub_view(READ, required=False)
def tree(request: HttpRequest, user, token, org_slug: str, model_slug: str, revision: str, path: str = ""):
    """``list_repo_tree()`` / ``list_repo_files()``: the files (and directories) below ``path``
    that the caller may download at ``revision``. Releases are small: one page, no cursor."""
    repo = repo_load(user, org_slug, model_slug)
    release = repo.release_at(revision)
    under = path.strip("/")
    prefix = f"{under}/" if under else ""
    in_scope = [artifact for artifact in repo.files[release.pk] if artifact.path.startswith(prefix)]
    if under and not in_scope:
        raise not_found(
            ENTRY_NOT_FOUND,
            f"No folder '{under}' in {repo.model.full_slug} {release.version}.",
            revision=release.revision,
        )
    visible = [artifact for artifact in in_scope if repo.decisions[artifact.pk].allowed]
    refusal = repo.refusal(in_scope)
    if not visible and refusal is not None:
        raise gated_error(
            request,
            refusal,
            fallback_url=repo.model.get_absolute_url(),
            anonymous=not user.is_authenticated,
        )
    last_commit = None
    if _flag(request, "expand"):
        last_commit = {
            "id": release.revision,
            "title": f"Release {release.version}",
            "date": hub_datetime(release.published_at),
        }
    return _json(
        tree_entries(
            visible,
            under=under,
            recursive=_flag(request, "recursive"),
            revision=release.revision,
            last_commit=last_commit,
        )
    )


@hub_view(DOWNLOAD, required=True)
def resolve(request: HttpRequest, user, token, org_slug: str, model_slug: str, revision: str, path: str):
    """302 to a presigned URL of the file at ``revision``, recorded as a download event.

    Four statements with a token: the token, the file's copies with their tiers, the user's
    grants, then one that writes the event with its audit row.
    """
    candidates = downloadable_artifacts(
        release__model__organization__slug=org_slug, release__model__slug=model_slug, path=path
    )
    if revision != MAIN:
        # Two releases with the same files share a revision: the newest answers, as in model info.
        candidates = (
            [c for c in candidates if c[0].release.revision == revision]
            or [c for c in candidates if c[0].release.version == revision]
        )[:1]
    if not candidates:
        raise _resolve_miss(org_slug, model_slug, revision, path)
    try:
        if revision == MAIN:
            issued = download_issue_newest(
                user=user, candidates=candidates, ip_address=client_ip(request), access_token=token
            )
        else:
            [(artifact, tiers)] = candidates
            issued = download_issue(
                user=user, artifact=artifact, tiers=tiers, ip_address=client_ip(request), access_token=token
            )
    except DownloadRefused as refused:
        model = candidates[0][0].release.model
        raise gated_error(request, refused.decision, fallback_url=model.get_absolute_url()) from None
    except DownloadsUnavailable as unavailable:
        retry_after = {"Retry-After": str(unavailable.RETRY_AFTER_SECONDS)}
        raise HubError(503, unavailable.message, headers=retry_after) from None
    download_url_issued("hub")
    artifact = issued.event.artifact
    response = HttpResponseRedirect(issued.url)
    response["X-Repo-Commit"] = artifact.release.revision
    response["X-Linked-Etag"] = response["ETag"] = f'"{artifact.sha256}"'
    if artifact.size is not None:  # published files are verified, hence sized; never send "None"
        response["X-Linked-Size"] = str(artifact.size)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _resolve_miss(org_slug: str, model_slug: str, revision: str, path: str) -> HubError:
    """Why no file answers: no such model, no such revision, or no such file (queries only here)."""
    releases = list(_published_releases(org_slug, model_slug).values_list("revision", "version"))
    if not releases:
        return _unknown_model(org_slug, model_slug)
    if revision == MAIN:
        return not_found(ENTRY_NOT_FOUND, f"No published release of {org_slug}/{model_slug} has '{path}'.")
    matches = [rev for rev, _ in releases if rev == revision] or [
        rev for rev, ver in releases if ver == revision
    ]
    if not matches:
        return not_found(
            REVISION_NOT_FOUND, f"{org_slug}/{model_slug} has no published release '{revision}'."
        )
    return not_found(
        ENTRY_NOT_FOUND,
        f"Release '{revision}' of {org_slug}/{model_slug} has no file '{path}'.",
        revision=matches[0],
    )


def agent_harnesses(request: HttpRequest):
    """The registry of AI coding agents the client fetches from its endpoint (at most daily) to
    name the agent in its user agent: none here. Answering spares a 404 on every ``hf`` run."""
    return _json({"standardEnvVars": [], "harnesses": {}})


def _flag(request: HttpRequest, name: str) -> bool:
    return request.GET.get(name, "").lower() in ("1", "true")


def _json(data) -> JsonResponse:
    response = JsonResponse(data, safe=False)
    # Per-caller answers: never stored by a shared cache.
    response["Cache-Control"] = "private, no-store"
    return response


urlpatterns = [
    path("api/whoami-v2", whoami, name="hub-whoami"),
    path("api/agent-harnesses", agent_harnesses, name="hub-agent-harnesses"),
    path("api/models/<str:org_slug>/<str:model_slug>", model_info, name="hub-model-info"),
    path(
        "api/models/<str:org_slug>/<str:model_slug>/revision/<path:revision>",
        model_info,
        name="hub-model-info-revision",
    ),
    path("api/models/<str:org_slug>/<str:model_slug>/tree/<str:revision>", tree, name="hub-tree"),
    path(
        "api/models/<str:org_slug>/<str:model_slug>/tree/<str:revision>/<path:path>",
        tree,
        name="hub-tree-path",
    ),
    path("<str:org_slug>/<str:model_slug>/resolve/<str:revision>/<path:path>", resolve, name="hub-resolve"),
]
