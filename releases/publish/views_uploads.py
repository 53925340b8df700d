"""Uploads of a draft release's files, for the browser uploader and the command-line script.

JSON endpoints under /publish/<org>/releases/<id>/uploads/: authenticated by session (CSRF-checked)
or by a personal access token (``Authorization: Bearer``; no CSRF check, since a browser never
attaches that header by itself and the portal answers no cross-origin request). Objects are looked
up through access.policy.publishable_organizations: anyone who is not an owner or publisher of the
release's organization gets 404, whether the release exists or not.

Errors answer ``{"error": "<code>", "message": "..."}``: 400 for a request that cannot be carried out
(nothing was changed), 404 for an unknown or foreign object, 503 when the object storage is down.
"""

from __future__ import annotations

import json
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from access import policy
from access.views.common import json_error, session_or_token
from access.views.downloads import manifest_text
from releases import uploads
from releases.models import Artifact, Release

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CLI_SCRIPT = Path(__file__).resolve().parent.parent / "cli_upload.py"


def _csrf_failure(request) -> str | None:
    # The check CsrfViewMiddleware would have made, for session requests only (as DRF does).
    check = CsrfViewMiddleware(lambda request: None)
    check.process_request(request)
    refused = check.process_view(request, None, (), {})
    return None if refused is None else getattr(refused, "reason_phrase", "refused")


def publisher_api(view):
    """Session or bearer-token authentication, CSRF for session requests, and JSON for every refusal."""

    @wraps(view)
    def checked(request, *args, **kwargs):
        if request.access_token is None and request.method not in SAFE_METHODS and _csrf_failure(request):
            return json_error(
                "csrf_failed", "The request lacks a valid CSRF token; reload the page.", status=403
            )
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return json_error("not_found", "No such release or file.", status=404)
        except uploads.UploadError as error:
            status = 503 if error.code == "storage_unavailable" else 400
            return json_error(error.code, error.message, status=status)

    return csrf_exempt(session_or_token(checked, scope="manage"))


def _release(request, org_slug: str, release_id: int) -> Release:
    return get_object_or_404(
        Release.objects.select_related("model__organization"),
        pk=release_id,
        model__organization__slug=org_slug,
        model__organization__in=policy.publishable_organizations(request.user),
    )


def _artifact(request, org_slug: str, release_id: int, artifact_id: int) -> Artifact:
    return get_object_or_404(
        Artifact.objects.select_related("release__model__organization"),
        pk=artifact_id,
        release_id=release_id,
        release__model__organization__slug=org_slug,
        release__model__organization__in=policy.publishable_organizations(request.user),
    )


def _json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except RequestDataTooBig:
        raise uploads.UploadError("The request is too large.", code="invalid_request") from None
    except (ValueError, UnicodeDecodeError):
        raise uploads.UploadError("The request body must be a JSON object.", code="invalid_request") from None
    if not isinstance(body, dict):
        raise uploads.UploadError("The request body must be a JSON object.", code="invalid_request")
    return body


def artifact_json(artifact: Artifact) -> dict:
    """An artifact as the uploaders see it, with the URLs of what they can do next."""
    release = artifact.release
    arguments = {
        "org_slug": release.model.organization.slug,
        "release_id": release.pk,
        "artifact_id": artifact.pk,
    }
    part_count = None
    if artifact.part_size:
        part_count = uploads.upload_part_count(size=artifact.expected_size or 0, part_size=artifact.part_size)
    return {
        "id": artifact.pk,
        "path": artifact.path,
        "status": artifact.status,
        "expected_size": artifact.expected_size,
        "expected_sha256": artifact.expected_sha256,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "part_size": artifact.part_size,
        "part_count": part_count,
        "failure_reason": artifact.failure_reason,
        "verified_at": artifact.verified_at.isoformat() if artifact.verified_at else None,
        "urls": {
            name: reverse(f"publish-upload-{name.replace('_', '-')}", kwargs=arguments)
            for name in ("detail", "part_urls", "parts", "complete", "discard")
        },
    }


# --- Pages -----------------------------------------------------------------------------------


@login_required
@require_GET
def upload_page(request, org_slug: str, release_id: int):
    """The browser uploader (releases/static/releases/upload.js) and the command-line alternative."""
    release = _release(request, org_slug, release_id)
    return render(
        request,
        "releases/publish/upload.html",
        {
            "release": release,
            "model": release.model,
            "organization": release.model.organization,
            "artifacts": list(release.artifacts.order_by("path")),
            "uploads_url": reverse(
                "publish-uploads", kwargs={"org_slug": org_slug, "release_id": release.pk}
            ),
            "portal_url": request.build_absolute_uri("/").rstrip("/"),
            "max_size": uploads.MAX_ARTIFACT_SIZE,
            "part_size": settings.UPLOAD_PART_SIZE_BYTES,
        },
    )


@login_required
@require_GET
def upload_cli_script(request, org_slug: str, release_id: int):
    """releases/cli_upload.py, standard library only, to run with any Python 3."""
    _release(request, org_slug, release_id)
    response = HttpResponse(CLI_SCRIPT.read_bytes(), content_type="text/x-python; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="gatehouse-upload.py"'
    return response


@session_or_token(scope="manage")
@require_GET
def release_manifest(request, org_slug: str, release_id: int):
    """The published release's SHA256SUMS, for ``sha256sum -c``; its sha1 is the release's revision.

    Researchers get the manifest of each tier they may download (access.views.downloads); this one
    covers every file of the release, for its publishers. A draft has no manifest yet: 404.
    """
    release = _release(request, org_slug, release_id)
    if release.status != Release.Status.PUBLISHED:
        raise Http404("A draft release has no manifest yet.")
    response = HttpResponse(
        manifest_text(release.artifacts.order_by("path")), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = 'inline; filename="SHA256SUMS"'
    response["X-Release-Revision"] = release.revision
    return response


# --- JSON endpoints --------------------------------------------------------------------------


@publisher_api
@require_http_methods(["GET", "POST"])
def uploads_collection(request, org_slug: str, release_id: int):
    """GET: the release's files with their status. POST {path, size, expected_sha256?}: start an upload."""
    release = _release(request, org_slug, release_id)
    if request.method == "GET":
        artifacts = release.artifacts.select_related("release__model__organization").order_by("path")
        return JsonResponse(
            {
                "release": {"id": release.pk, "version": release.version, "status": release.status},
                "artifacts": [artifact_json(artifact) for artifact in artifacts],
            }
        )
    body = _json_body(request)
    artifact = uploads.artifact_upload_start(
        release=release,
        path=body.get("path"),
        size=body.get("size"),
        expected_sha256=body.get("expected_sha256") or "",
        actor=request.user,
    )
    return JsonResponse({"artifact": artifact_json(artifact)}, status=201)


@publisher_api
@require_GET
def upload_detail(request, org_slug: str, release_id: int, artifact_id: int):
    artifact = _artifact(request, org_slug, release_id, artifact_id)
    return JsonResponse({"artifact": artifact_json(artifact)})


@publisher_api
@require_POST
def upload_part_urls(request, org_slug: str, release_id: int, artifact_id: int):
    """POST {part_numbers: [1, 2, ...]}: a presigned PUT URL for each, and how long they live."""
    artifact = _artifact(request, org_slug, release_id, artifact_id)
    body = _json_body(request)
    urls = uploads.artifact_upload_part_urls(artifact=artifact, part_numbers=body.get("part_numbers"))
    return JsonResponse(
        {
            "urls": {str(number): url for number, url in urls.items()},
            "expires_in": settings.UPLOAD_PART_URL_LIFETIME_SECONDS,
        }
    )


@publisher_api
@require_GET
def upload_parts(request, org_slug: str, release_id: int, artifact_id: int):
    """The parts already stored, to resume: {parts: [{part_number, size, etag}]}."""
    artifact = _artifact(request, org_slug, release_id, artifact_id)
    parts = uploads.artifact_upload_parts(artifact=artifact)
    return JsonResponse(
        {"parts": [{"part_number": part.part_number, "size": part.size, "etag": part.etag} for part in parts]}
    )


@publisher_api
@require_POST
def upload_complete(request, org_slug: str, release_id: int, artifact_id: int):
    """POST {parts: [{part_number, etag}, ...]}: assemble the file; verification follows (202)."""
    artifact = _artifact(request, org_slug, release_id, artifact_id)
    parts = _json_body(request).get("parts")
    if not isinstance(parts, list) or not all(
        isinstance(part, dict) and set(part) == {"part_number", "etag"} for part in parts
    ):
        raise uploads.UploadError(
            'List the parts as [{"part_number": 1, "etag": "..."}, ...].', code="invalid_parts"
        )
    artifact = uploads.artifact_upload_complete(
        artifact=artifact,
        parts=[(part["part_number"], part["etag"]) for part in parts],
        actor=request.user,
    )
    status = 200 if artifact.status == Artifact.Status.VERIFIED else 202
    return JsonResponse({"artifact": artifact_json(artifact)}, status=status)


@publisher_api
@require_POST
def upload_discard(request, org_slug: str, release_id: int, artifact_id: int):
    """Remove an unfinished or failed file, so that its path can be uploaded again."""
    artifact = _artifact(request, org_slug, release_id, artifact_id)
    uploads.artifact_upload_discard(artifact=artifact, actor=request.user)
    return JsonResponse({"discarded": artifact_id})
