"""Command-line downloads end to end: the portal's script run by ``sh`` with the real ``curl``,
against the live portal and a real SeaweedFS, then checked with ``sha256sum -c``.

SeaweedFS ignores an ``Authorization`` header sent along with a presigned URL (AWS S3 refuses the
request), so a forwarded token would not make a download fail here. A recording relay in front of
SeaweedFS therefore keeps every request that reaches the storage host, and the tests read it.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import socket
import subprocess
import threading
import urllib.parse
from pathlib import Path

import pytest
from django.urls import reverse

from access.models import DownloadEvent
from portal import storage
from releases.models import Tier
from tests.factories import TierFactory
from tests.scenes import approved_grant, fetch, new_token, sha256, upload_artifact

FILES = {
    "config.json": b'{"hidden_size": 64, "num_layers": 2}\n',
    "model-00001-of-00001.safetensors": os.urandom(1_500_000),
    "tokenizer/tokenizer.json": b'{"model": {"type": "BPE"}}\n',
}
WEIGHTS = "model-00001-of-00001.safetensors"


class RecordingRelay:
    """A TCP relay to the storage server that keeps every byte clients send through it."""

    def __init__(self, target_host: str, target_port: int):
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._received: list[bytearray] = []
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RecordingRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for connection in self._sockets:
                connection.close()

    def request_heads(self) -> list[str]:
        """The request line and headers of every request that reached the storage host."""
        with self._lock:
            streams = [bytes(received) for received in self._received]
        return [head.decode("latin-1") for stream in streams for head in stream.split(b"\r\n\r\n") if head]

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self._target)
            received = bytearray()
            with self._lock:
                self._received.append(received)
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, received), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, destination: socket.socket, received: bytearray | None) -> None:
        try:
            while data := source.recv(65536):
                if received is not None:
                    with self._lock:
                        received.extend(data)
                destination.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                destination.shutdown(socket.SHUT_WR)


@pytest.fixture
def tier(s3, release):
    artifacts = [upload_artifact(s3, release, path, body) for path, body in FILES.items()]
    return TierFactory(release=release, name="Public", gate=Tier.Gate.CLICK_THROUGH, artifacts=artifacts)


@pytest.fixture
def relay(s3, settings, tier):
    """Presigned URLs point at the relay from here on; the objects were uploaded directly."""
    endpoint = urllib.parse.urlsplit(s3.endpoint_url)
    with RecordingRelay(endpoint.hostname, endpoint.port) as running:
        settings.S3_ENDPOINT_URL = running.url
        storage.clear_client_cache()
        yield running


@pytest.fixture
def portal_url(live_server, relay) -> str:
    """The live portal on 127.0.0.1 like the storage relay, so that only the port tells the hosts apart."""
    portal = urllib.parse.urlsplit(live_server.url)
    url = f"http://127.0.0.1:{portal.port}"
    assert urllib.parse.urlsplit(relay.url).hostname == "127.0.0.1"
    assert urllib.parse.urlsplit(relay.url).port != portal.port
    return url


@pytest.fixture
def token(tier, researcher, reviewer):
    approved_grant(researcher, tier, reviewer)
    return new_token(researcher, name="cluster")


def download_script(portal_url: str, tier, raw_token: str) -> str:
    status, headers, body = fetch(
        portal_url + reverse("tier-download-script", kwargs={"tier_id": tier.pk}),
        headers={"Authorization": f"Bearer {raw_token}"},
    )
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/x-shellscript")
    return body.decode()


def run_script(script: str, workdir: Path, raw_token: str) -> subprocess.CompletedProcess:
    script_path = workdir.parent / "gatehouse-download.sh"
    script_path.write_text(script)
    return subprocess.run(  # noqa: S603 - a fixed command on a script the test wrote
        ["sh", str(script_path)],  # noqa: S607
        cwd=workdir,
        env={"PATH": os.environ["PATH"], "HOME": str(workdir.parent), "GATEHOUSE_TOKEN": raw_token},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def events_per_path() -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in DownloadEvent.objects.select_related("artifact"):
        counts[event.artifact.path] = counts.get(event.artifact.path, 0) + 1
    return counts


def assert_no_token_reached_storage(relay: RecordingRelay, raw_token: str) -> None:
    # The portal's own signed bucket check (portal/storage_probe.py) passes the relay too; only what
    # the script's curl sent is the client's.
    heads = [head for head in relay.request_heads() if re.search(r"^user-agent: curl/", head, re.I | re.M)]
    assert heads, "no request from curl reached the storage host"
    for head in heads:
        assert not re.search(r"^authorization:", head, re.IGNORECASE | re.MULTILINE), head
        assert raw_token not in head


@pytest.fixture
def workdir(tmp_path) -> Path:
    directory = tmp_path / "weights"
    directory.mkdir()
    return directory


def test_script_downloads_every_file_and_checks_the_sums(portal_url, relay, tier, token, workdir):
    access_token, raw = token

    result = run_script(download_script(portal_url, tier, raw), workdir, raw)

    assert result.returncode == 0, result.stderr
    for path, body in FILES.items():
        assert sha256((workdir / path).read_bytes()) == sha256(body), path
        assert f"{path}: OK" in result.stdout
    assert events_per_path() == dict.fromkeys(FILES, 1)
    assert set(DownloadEvent.objects.values_list("access_token", flat=True)) == {access_token.pk}
    assert len([head for head in relay.request_heads() if head.startswith("GET ")]) == len(FILES)
    assert_no_token_reached_storage(relay, raw)


def test_interrupted_file_resumes_with_a_fresh_url(portal_url, relay, tier, token, workdir):
    _, raw = token
    script = download_script(portal_url, tier, raw)
    assert run_script(script, workdir, raw).returncode == 0
    half = len(FILES[WEIGHTS]) // 2
    with open(workdir / WEIGHTS, "r+b") as partial:
        partial.truncate(half)

    result = run_script(script, workdir, raw)

    assert result.returncode == 0, result.stderr
    assert sha256((workdir / WEIGHTS).read_bytes()) == sha256(FILES[WEIGHTS])
    assert f"downloaded: {WEIGHTS}" in result.stdout
    assert "already complete: config.json" in result.stdout
    assert f"{WEIGHTS}: OK" in result.stdout
    assert events_per_path() == {**dict.fromkeys(FILES, 1), WEIGHTS: 2}
    # The second request for the weights asked the storage for the missing half only.
    assert re.search(rf"^range: bytes={half}-\r?$", relay.request_heads()[-1], re.IGNORECASE | re.MULTILINE)
    assert_no_token_reached_storage(relay, raw)


def test_resume_keeps_the_bytes_on_disk_so_a_damaged_part_fails_the_check(
    portal_url, relay, tier, token, workdir
):
    _, raw = token
    script = download_script(portal_url, tier, raw)
    assert run_script(script, workdir, raw).returncode == 0
    half = len(FILES[WEIGHTS]) // 2
    damaged = bytes([FILES[WEIGHTS][0] ^ 0xFF]) + FILES[WEIGHTS][1:half]
    (workdir / WEIGHTS).write_bytes(damaged)

    result = run_script(script, workdir, raw)

    assert result.returncode != 0
    assert f"{WEIGHTS}: FAILED" in result.stdout
    assert (workdir / WEIGHTS).read_bytes() == damaged + FILES[WEIGHTS][half:]


def test_command_shown_on_the_files_page_works(portal_url, relay, tier, token, workdir):
    _, raw = token
    status, _, page = fetch(
        portal_url + reverse("tier-files", kwargs={"tier_id": tier.pk}),
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert status == 200
    command = html.unescape(
        re.search(r'<pre id="cli-command">(.*?)</pre>', page.decode(), re.DOTALL).group(1)
    )
    first_line, *commands = command.splitlines()
    assert first_line == "export GATEHOUSE_TOKEN=<your token>"

    result = run_script("set -e\n" + "\n".join(commands) + "\n", workdir, raw)

    assert result.returncode == 0, result.stderr
    for path, body in FILES.items():
        assert sha256((workdir / path).read_bytes()) == sha256(body)


def test_relay_sees_an_authorization_header_that_curl_is_told_to_forward(
    portal_url, relay, tier, token, workdir
):
    """The check above can fail: with --location-trusted curl sends the token on to the storage host."""
    _, raw = token
    artifact = tier.artifacts.get(path="config.json")
    url = portal_url + reverse("artifact-download", kwargs={"artifact_id": artifact.pk})

    subprocess.run(  # noqa: S603
        ["curl", "-s", "-o", os.devnull, "--location-trusted", "-H", f"Authorization: Bearer {raw}", url],  # noqa: S607
        check=False,
        timeout=30,
    )

    with pytest.raises(AssertionError):
        assert_no_token_reached_storage(relay, raw)


def test_manifest_is_accepted_by_sha256sum(client, s3, tier, token, workdir):
    _, raw = token
    for path, body in FILES.items():
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).write_bytes(body)

    response = client.get(
        reverse("tier-manifest", kwargs={"tier_id": tier.pk}), HTTP_AUTHORIZATION=f"Bearer {raw}"
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    (workdir / "SHA256SUMS").write_bytes(response.content)
    check = subprocess.run(  # noqa: S603
        ["sha256sum", "-c", "SHA256SUMS"],  # noqa: S607
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert sorted(line.rsplit(": ", 1)[0] for line in check.stdout.splitlines()) == sorted(FILES)

    (workdir / "config.json").write_bytes(b"{}")
    recheck = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=workdir, capture_output=True, check=False)  # noqa: S603, S607
    assert recheck.returncode == 1
