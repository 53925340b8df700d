"""Files of a tier and their download URLs, for browsers and for token clients.

The portal authorises, records and redirects; the bytes come from object storage.
"""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from access import download_policy
from access.services.downloads import DownloadRefused, DownloadsUnavailable, download_issue
from access.views.common import client_ip, refusal_response, session_or_token
from portal.metrics import download_url_issued
from releases.models import Artifact, Release, Tier


def _published_tier(tier_id: int) -> Tier:
    return get_object_or_404(
        Tier.objects.select_related("release__model__organization"),
        pk=tier_id,
        release__status=Release.Status.PUBLISHED,
    )


@session_or_token(scope="download")
def artifact_download(request, artifact_id: int):
    """302 to a presigned URL of this artifact's object version, if the user may have it now."""
    artifact = get_object_or_404(
        Artifact.objects.select_related("release").prefetch_related("tiers"),
        pk=artifact_id,
        release__status=Release.Status.PUBLISHED,
    )
    try:
        issued = download_issue(
            user=request.user,
            artifact=artifact,
            ip_address=client_ip(request),
            access_token=request.access_token,
        )
    except DownloadRefused as refused:
        decision = refused.decision
        return refusal_response(
            request, code=decision.code, message=decision.message, action_url=decision.action_url
        )
    except DownloadsUnavailable as unavailable:
        response = refusal_response(request, code=unavailable.code, message=unavailable.message, status=503)
        response["Retry-After"] = str(unavailable.RETRY_AFTER_SECONDS)
        return response
    download_url_issued("page")
    response = HttpResponseRedirect(issued.url)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _tier_files_or_refusal(request, tier_id: int):
    tier = _published_tier(tier_id)
    refusal = download_policy.tier_download_refusal(request.user, tier)
    if refusal is not None:
        return tier, refusal_response(
            request, code=refusal.code, message=refusal.message, action_url=refusal.action_url
        )
    return tier, None


@session_or_token
def tier_files(request, tier_id: int):
    """Each file with its size and sha256, the manifest, and a ready command-line download."""
    tier, refused = _tier_files_or_refusal(request, tier_id)
    if refused:
        return refused
    artifacts = list(tier.artifacts.order_by("path"))
    script_url = request.build_absolute_uri(reverse("tier-download-script", kwargs={"tier_id": tier.pk}))
    return render(
        request,
        "access/tier_files.html",
        {"tier": tier, "model": tier.release.model, "artifacts": artifacts, "script_url": script_url},
    )


def manifest_text(artifacts) -> str:
    """Lines that ``sha256sum -c`` accepts: '<sha256>  <path>'."""
    return "".join(f"{artifact.sha256}  {artifact.path}\n" for artifact in artifacts)


@session_or_token
def tier_manifest(request, tier_id: int):
    tier, refused = _tier_files_or_refusal(request, tier_id)
    if refused:
        return refused
    response = HttpResponse(
        manifest_text(tier.artifacts.order_by("path")), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = 'inline; filename="SHA256SUMS"'
    return response


@session_or_token
def tier_download_script(request, tier_id: int):
    """A POSIX shell script that fetches every file with curl, resuming partial files
    with a fresh URL, and checks the sums. Needs GATEHOUSE_TOKEN in the environment."""
    tier, refused = _tier_files_or_refusal(request, tier_id)
    if refused:
        return refused
    artifacts = list(tier.artifacts.order_by("path"))
    context = {
        "tier": tier,
        "artifacts": [
            (
                artifact,
                request.build_absolute_uri(reverse("artifact-download", kwargs={"artifact_id": artifact.pk})),
            )
            for artifact in artifacts
        ],
        "manifest": manifest_text(artifacts),
    }
    response = render(
        request, "access/download.sh", context, content_type="text/x-shellscript; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="gatehouse-tier-{tier.pk}.sh"'
    return response
