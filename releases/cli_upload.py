"""Upload files to a draft release of a Gatehouse portal, straight to its object storage.

    export GATEHOUSE_TOKEN=gh_...        # a personal access token of an owner or publisher
    python3 gatehouse-upload.py --portal https://gatehouse.example.org --organization acme \\
        --release 12 model-00001-of-00002.safetensors model-00002-of-00002.safetensors config.json

(or ``python -m releases.cli_upload ...`` from a Gatehouse checkout). Standard library only: the portal
serves this very file from each release's upload page.

For each file: compute its sha256 locally, ask the portal to start an upload (it chooses the part size),
send the parts in parallel to presigned URLs (a fresh URL per attempt, each part retried), ask the
portal to complete the upload, and wait until the portal has verified the stored file's sha256. Run
the same command again after an interruption: a file whose upload is unfinished is resumed (the parts
already stored, checked against their MD5 ETags, are not sent again), a file already verified with the
same sha256 is skipped.

A file's path in the release is the path given on the command line when it is relative (``shards/a.bin``
stays ``shards/a.bin``), else its base name; ``--path-prefix`` goes in front. Exit status: 0 when every
file is verified, 1 otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import posixpath
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PARALLEL_PARTS = 4
PART_ATTEMPTS = 5
READ_BLOCK = 1024 * 1024
HTTP_TIMEOUT_SECONDS = 300
POLL_SECONDS = 2.0


class UploadFailed(Exception):
    """Something the user must know about; the message says what."""


@dataclass
class ApiError(Exception):
    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.message} ({self.code}, HTTP {self.status})"


class Portal:
    """The portal's upload endpoints for one release, authenticated with a personal access token."""

    def __init__(self, base_url: str, organization: str, release_id: int, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.uploads_url = (
            f"{self.base_url}/publish/{urllib.parse.quote(organization)}/releases/{release_id}/uploads/"
        )
        self.token = token

    def call(self, method: str, url: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(  # noqa: S310 - the portal URL the user gave
            urllib.parse.urljoin(self.base_url + "/", url),
            method=method,
            data=None if body is None else json.dumps(body).encode("utf-8"),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                answer = json.loads(error.read())
            except ValueError:
                answer = {}
            raise ApiError(
                error.code, answer.get("error", "http_error"), answer.get("message", str(error.reason))
            ) from None


class FileSlice:
    """A readable window on a file, so that a part is streamed, not loaded whole."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        # Closed by close(), once urllib has sent the part.
        self._file = open(path, "rb")  # noqa: SIM115
        self._file.seek(offset)
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._file.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


def file_digest(path: Path, algorithm: str, offset: int = 0, length: int | None = None) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as source:
        source.seek(offset)
        left = length
        while left is None or left > 0:
            block = source.read(READ_BLOCK if left is None else min(READ_BLOCK, left))
            if not block:
                break
            digest.update(block)
            if left is not None:
                left -= len(block)
    return digest.hexdigest()


def release_path(argument: str, prefix: str) -> str:
    relative = posixpath.normpath(argument.replace(os.sep, "/"))
    if posixpath.isabs(relative) or relative.startswith(".."):
        relative = posixpath.basename(relative)
    return posixpath.join(prefix, relative) if prefix else relative


def say(message: str) -> None:
    print(message, flush=True)


class FileUpload:
    def __init__(self, portal: Portal, path: Path, release_path: str, sha256: str, parallel: int) -> None:
        self.portal = portal
        self.path = path
        self.release_path = release_path
        self.size = path.stat().st_size
        self.sha256 = sha256
        self.parallel = parallel
        self._lock = threading.Lock()
        self._sent = 0

    def run(self, wait: bool) -> dict:
        artifact = self._start_or_resume()
        if artifact["status"] == "verified":
            say(f"{self.release_path}: already uploaded and verified, skipped")
            return artifact
        if artifact["status"] == "uploading":
            etags = self._upload_missing_parts(artifact)
            parts = [{"part_number": number, "etag": etags[number]} for number in sorted(etags)]
            artifact = self.portal.call("POST", artifact["urls"]["complete"], {"parts": parts})["artifact"]
            say(f"{self.release_path}: uploaded, verifying")
        while wait and artifact["status"] == "verifying":
            time.sleep(POLL_SECONDS)
            artifact = self.portal.call("GET", artifact["urls"]["detail"])["artifact"]
        if artifact["status"] == "verified":
            say(f"{self.release_path}: verified, sha256 {artifact['sha256']}")
        elif artifact["status"] == "failed":
            say(f"{self.release_path}: FAILED: {artifact['failure_reason']}")
        return artifact

    def _start_or_resume(self) -> dict:
        body = {"path": self.release_path, "size": self.size, "expected_sha256": self.sha256}
        try:
            return self.portal.call("POST", self.portal.uploads_url, body)["artifact"]
        except ApiError as error:
            if error.code != "duplicate_path":
                raise
        listing = self.portal.call("GET", self.portal.uploads_url)["artifacts"]
        existing = next((artifact for artifact in listing if artifact["path"] == self.release_path), None)
        if existing is None:
            raise UploadFailed(
                f"{self.release_path}: the portal refused the path, then did not list it; retry"
            )
        same_file = existing["expected_size"] == self.size and existing["expected_sha256"] in (
            "",
            self.sha256,
        )
        if existing["status"] == "verified" and existing["size"] == self.size:
            if existing["sha256"] == self.sha256 or not self.sha256:
                return existing
        if existing["status"] in ("uploading", "verifying") and same_file:
            say(f"{self.release_path}: resuming the unfinished upload")
            return existing
        reason = f": {existing['failure_reason']}" if existing["failure_reason"] else ""
        raise UploadFailed(
            f"{self.release_path}: the release already has another file at this path "
            f"({existing['status']}{reason}). Discard it on the upload page first."
        )

    def _upload_missing_parts(self, artifact: dict) -> dict[int, str]:
        part_size, part_count = artifact["part_size"], artifact["part_count"]
        stored = self.portal.call("GET", artifact["urls"]["parts"])["parts"]
        etags: dict[int, str] = {}
        for part in stored:
            number = part["part_number"]
            if 1 <= number <= part_count and self._stored_part_matches(part, part_size, part_count):
                etags[number] = part["etag"]
                self._sent += part["size"]
        if etags:
            say(f"{self.release_path}: {len(etags)} of {part_count} parts already stored")
        missing = [number for number in range(1, part_count + 1) if number not in etags]
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.parallel) as pool:
            futures = {
                pool.submit(self._upload_part, artifact, number, part_size): number for number in missing
            }
            for future in concurrent.futures.as_completed(futures):
                etags[futures[future]] = future.result()
        return etags

    def _part_bounds(self, number: int, part_size: int) -> tuple[int, int]:
        offset = (number - 1) * part_size
        return offset, max(0, min(part_size, self.size - offset))

    def _stored_part_matches(self, part: dict, part_size: int, part_count: int) -> bool:
        offset, length = self._part_bounds(part["part_number"], part_size)
        if part["size"] != length:
            return False
        etag = part["etag"].strip('"')
        # A plain S3 part's ETag is the MD5 of its bytes; other ETags (encrypted buckets) are trusted,
        # and the sha256 check after completion catches a wrong part.
        if len(etag) == 32 and all(character in "0123456789abcdef" for character in etag):
            return file_digest(self.path, "md5", offset, length) == etag
        return True

    def _upload_part(self, artifact: dict, number: int, part_size: int) -> str:
        offset, length = self._part_bounds(number, part_size)
        for attempt in range(1, PART_ATTEMPTS + 1):
            try:
                # A fresh URL per attempt: a retry never meets an expired signature.
                answer = self.portal.call("POST", artifact["urls"]["part_urls"], {"part_numbers": [number]})
                body = FileSlice(self.path, offset, length)
                try:
                    request = urllib.request.Request(  # noqa: S310 - a presigned URL from the portal
                        answer["urls"][str(number)],
                        data=body,
                        method="PUT",
                        headers={"Content-Length": str(length)},
                    )
                    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
                        etag = response.headers["ETag"]
                finally:
                    body.close()
                if not etag:
                    raise UploadFailed("the storage answered without an ETag")
            except ApiError as error:
                if error.status < 500:
                    raise
                problem: Exception = error
            except (OSError, UploadFailed) as error:
                problem = error
            else:
                with self._lock:
                    self._sent += length
                    done = self._sent
                say(f"{self.release_path}: part {number} sent ({done * 100 // max(self.size, 1)}%)")
                return etag
            if attempt == PART_ATTEMPTS:
                raise UploadFailed(f"part {number} failed {PART_ATTEMPTS} times, last: {problem}")
            say(f"{self.release_path}: part {number} failed ({problem}), retrying")
            time.sleep(min(2**attempt, 30))
        raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--portal", required=True, help="the portal's base URL, e.g. https://gatehouse.example.org"
    )
    parser.add_argument("--organization", required=True, help="the organization's slug, e.g. acme")
    parser.add_argument(
        "--release", required=True, type=int, help="the draft release's id (see its upload page)"
    )
    parser.add_argument("--path-prefix", default="", help="a directory in the release to put the files in")
    parser.add_argument("--parallel", type=int, default=PARALLEL_PARTS, help="parts sent at once (default 4)")
    parser.add_argument("--no-sha256", action="store_true", help="skip the local sha256 (not recommended)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the portal's verification")
    parser.add_argument("files", nargs="+", metavar="FILE")
    arguments = parser.parse_args(argv)
    token = os.environ.get("GATEHOUSE_TOKEN", "")
    if not token:
        parser.error("set GATEHOUSE_TOKEN to a personal access token (Access tokens page of the portal)")
    if not 1 <= arguments.parallel <= 16:
        parser.error("--parallel takes 1 to 16")
    portal = Portal(arguments.portal, arguments.organization, arguments.release, token)
    failures = 0
    for name in arguments.files:
        path = Path(name)
        target = release_path(name, arguments.path_prefix.strip("/"))
        try:
            if not path.is_file():
                raise UploadFailed(f"{name}: not a readable file")
            sha256 = "" if arguments.no_sha256 else file_digest(path, "sha256")
            artifact = FileUpload(portal, path, target, sha256, arguments.parallel).run(not arguments.no_wait)
            failures += artifact["status"] == "failed"
        except (ApiError, UploadFailed, OSError) as error:
            say(f"{target}: FAILED: {error}")
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
