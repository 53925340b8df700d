"""What the Hugging Face Hub protocol looks like on the wire, for the hub routes.

Errors: the client (``huggingface_hub.utils.hf_raise_for_status``) picks its exception from the
``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``)
and shows ``X-Error-Message`` plus the body's ``"error"``; a HEAD response has no body, so the
header alone must carry Gatehouse's explanation and the page to act on.

JSON shapes: model info (``siblings``), tree entries and whoami, with the field names the client
parses. A file's ``oid`` is the git blob id of its Git LFS pointer, as the hub reports for large
files, so it is stable and derived from the sha256 alone.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from access.download_policy import DownloadDecision
from api.errors import ApiError
from releases.models import Artifact, Tier

# The client's names for the refusals it turns into its own exception classes.
REPO_NOT_FOUND = "RepoNotFound"
REVISION_NOT_FOUND = "RevisionNotFound"
ENTRY_NOT_FOUND = "EntryNotFound"
GATED_REPO = "GatedRepo"

MAIN = "main"
LFS_SPEC = "https://git-lfs.github.com/spec/v1"


class HubError(Exception):
    """Raised in a hub view to answer ``status`` with this message (and hub error code, if any)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def header_text(text: str) -> str:
    """``text`` as one line of ASCII: HTTP header values cannot carry newlines, and clients decode
    them as Latin-1, so accents are dropped here (the JSON body keeps the exact text)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"\s+", " ", ascii_text).strip()


def hub_error_response(request: HttpRequest, error: HubError) -> HttpResponse:
    if request.method == "HEAD":
        response = HttpResponse(status=error.status)
    else:
        response = JsonResponse({"error": error.message}, status=error.status)
    response["X-Error-Message"] = header_text(error.message)
    if error.code:
        response["X-Error-Code"] = error.code
    for name, value in error.headers.items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response


def hub_error_from_api(request: HttpRequest, error: ApiError) -> HubError:
    """An authentication refusal (bad token, missing scope, rate limit) in the hub's terms: the
    same status and explanation, and a bearer challenge on 401."""
    headers = dict(error.headers)
    message = error.message
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="gatehouse"'
        if error.code == "auth_required":
            message = (
                "Send a Gatehouse personal access token (set HF_TOKEN, or pass token=...); "
                f"create one at {request.build_absolute_uri(reverse('token-list'))}"
            )
    return HubError(error.status, message, headers=headers)


def gated_error(
    request: HttpRequest, decision: DownloadDecision, *, fallback_url: str, anonymous: bool = False
) -> HubError:
    """The policy's refusal as the client's gated-repository error: its sentence, then the
    absolute URL of the page to act on (apply, re-accept the license, or the model page)."""
    page = request.build_absolute_uri(decision.action_url or fallback_url)
    if anonymous:
        # The policy's first reason for someone without an account would be an unverified
        # e-mail address; what they need first is an identity.
        token_page = request.build_absolute_uri(reverse("token-list"))
        message = (
            "This model is gated: send a Gatehouse personal access token (set HF_TOKEN; create one at "
            f"{token_page}), then request access on {page}"
        )
        return HubError(
            401, message, code=GATED_REPO, headers={"WWW-Authenticate": 'Bearer realm="gatehouse"'}
        )
    return HubError(403, f"{decision.message.rstrip(' .')}: {page}", code=GATED_REPO)


def not_found(code: str, message: str, *, revision: str = "") -> HubError:
    # X-Repo-Commit on an EntryNotFound lets the client remember the file's absence at that commit.
    headers = {"X-Repo-Commit": revision} if revision else {}
    return HubError(404, message, code=code, headers=headers)


def hub_datetime(moment: datetime | None) -> str | None:
    """The hub's timestamp format, which the client's strict parser expects."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def lfs_pointer(artifact: Artifact) -> bytes:
    return f"version {LFS_SPEC}\noid sha256:{artifact.sha256}\nsize {artifact.size}\n".encode()


def blob_oid(artifact: Artifact) -> str:
    """The git blob id of the file's LFS pointer."""
    pointer = lfs_pointer(artifact)
    header = f"blob {len(pointer)}\0".encode()
    return hashlib.sha1(header + pointer, usedforsecurity=False).hexdigest()


def sibling(artifact: Artifact) -> dict:
    """One entry of model info's ``siblings``, always with size and LFS sha256 (the hub adds
    them only on ``?blobs=true``; they cost nothing here)."""
    return {
        "rfilename": artifact.path,
        "size": artifact.size,
        "blobId": blob_oid(artifact),
        "lfs": {"size": artifact.size, "sha256": artifact.sha256, "pointerSize": len(lfs_pointer(artifact))},
    }


def tree_file(artifact: Artifact, last_commit: dict | None = None) -> dict:
    entry = {
        "type": "file",
        "oid": blob_oid(artifact),
        "size": artifact.size,
        "path": artifact.path,
        "lfs": {"oid": artifact.sha256, "size": artifact.size, "pointerSize": len(lfs_pointer(artifact))},
    }
    if last_commit is not None:
        entry["lastCommit"] = last_commit
    return entry


def tree_directory(path: str, revision: str, last_commit: dict | None = None) -> dict:
    # Releases store files, not git trees: a directory's id only needs to be stable per revision.
    oid = hashlib.sha1(f"{revision}:{path}".encode(), usedforsecurity=False).hexdigest()
    entry = {"type": "directory", "oid": oid, "path": path}
    if last_commit is not None:
        entry["lastCommit"] = last_commit
    return entry


def tree_entries(
    artifacts: list[Artifact], *, under: str, recursive: bool, revision: str, last_commit: dict | None
) -> list[dict]:
    """The entries below directory ``under`` ("" for the root): its files and directories, and
    with ``recursive`` everything beneath them too, in path order."""
    prefix = f"{under.strip('/')}/" if under.strip("/") else ""
    entries: dict[str, dict] = {}
    for artifact in sorted(artifacts, key=lambda artifact: artifact.path):
        if not artifact.path.startswith(prefix):
            continue
        parts = artifact.path[len(prefix) :].split("/")
        for depth in range(1, len(parts) if recursive else min(2, len(parts))):
            directory = prefix + "/".join(parts[:depth])
            entries.setdefault(directory, tree_directory(directory, revision, last_commit))
        if recursive or len(parts) == 1:
            entries[artifact.path] = tree_file(artifact, last_commit)
    return sorted(entries.values(), key=lambda entry: entry["path"])


def gated_value(files: list[Artifact], tiers_of: dict[int, list[Tier]]) -> bool | str:
    """The hub's ``gated`` for a release: False when every file is in an open tier that anyone may
    download; "auto" when access can be had without a person deciding (accepting the license, or
    an application approved automatically); "manual" otherwise, including when no tier is open."""
    open_tiers = {tier.pk: tier for artifact in files for tier in tiers_of[artifact.pk] if tier.is_open}
    if files and all(
        any(tier.is_open and tier.gate == Tier.Gate.OPEN for tier in tiers_of[artifact.pk])
        for artifact in files
    ):
        return False
    for tier in open_tiers.values():
        if tier.gate == Tier.Gate.CLICK_THROUGH or (
            tier.gate == Tier.Gate.APPLICATION and tier.approval == Tier.Approval.AUTO
        ):
            return "auto"
    return "manual"
