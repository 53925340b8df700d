"""The one-command demo (``python -m portal.demo``) and the files it publishes.

The end-to-end test runs the demo as a user would, in a directory of its own: SQLite, the filesystem broker
and SeaweedFS, no PostgreSQL or Redis. It talks to the demo only over HTTP, through the SQLite file, and
through /proc; the Django settings of this test session play no part.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from releases.demo_artifacts import demo_release_files

REPO_DIR = Path(__file__).resolve().parent.parent


def _read_safetensors(body: bytes) -> tuple[dict, bytes]:
    (header_length,) = struct.unpack("<Q", body[:8])
    assert header_length % 8 == 0
    header = json.loads(body[8 : 8 + header_length])
    return header, body[8 + header_length :]


def test_demo_checkpoint_is_valid_safetensors():
    files = {demo_file.path: demo_file.body for demo_file in demo_release_files()}
    header, data = _read_safetensors(files["model.safetensors"])

    assert header.pop("__metadata__") == {"format": "pt"}
    # The tensors cover the data exactly, without gaps or overlaps, and each has the size its shape says.
    ranges = sorted(tuple(tensor["data_offsets"]) for tensor in header.values())
    assert ranges[0][0] == 0
    assert all(previous[1] == following[0] for previous, following in zip(ranges, ranges[1:], strict=False))
    assert ranges[-1][1] == len(data)
    for tensor in header.values():
        assert tensor["dtype"] == "F32"
        start, end = tensor["data_offsets"]
        assert end - start == 4 * math.prod(tensor["shape"])
    embed = header["model.embed_tokens.weight"]
    assert embed["shape"] == [64, 8]
    first_values = struct.unpack("<2f", data[embed["data_offsets"][0] : embed["data_offsets"][0] + 8])
    assert first_values != (0.0, 0.0)


def test_demo_files_are_small_json_and_the_same_on_every_run():
    files = demo_release_files()

    assert [demo_file.path for demo_file in files] == ["config.json", "model.safetensors", "tokenizer.json"]
    assert all(0 < len(demo_file.body) < 16_384 for demo_file in files)
    assert [demo_file.body for demo_file in files] == [demo_file.body for demo_file in demo_release_files()]
    by_path = {demo_file.path: demo_file.body for demo_file in files}
    config = json.loads(by_path["config.json"])
    tokenizer = json.loads(by_path["tokenizer.json"])
    assert len(tokenizer["model"]["vocab"]) == config["vocab_size"] == 64


# --- The demo, end to end -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_of(demo_dir: Path) -> dict[int, str]:
    """Live processes started for this demo directory, by pid: every descendant inherits its environment."""
    marker = f"GATEHOUSE_DEMO_DIR={demo_dir}".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def _log_tail(log_path: Path) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-60:])


def _wait_for(condition, *, timeout: float, what: str, demo: subprocess.Popen, log_path: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            pytest.fail(f"The demo exited with {demo.returncode} before {what}:\n{_log_tail(log_path)}")
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"Timed out after {timeout:.0f} s waiting for {what}:\n{_log_tail(log_path)}")


def _status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a local http URL
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def _public_tier_opened_at(database: Path) -> str | None:
    if not database.exists():
        return None
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            row = connection.execute("SELECT opened_at FROM releases_tier WHERE name = 'Public'").fetchone()
    except sqlite3.OperationalError:
        return None  # not migrated yet
    return row[0] if row else None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the demo's processes through /proc")
def test_demo_serves_opens_the_scheduled_tier_and_stops_everything(tmp_path):
    demo_dir = tmp_path / "demo"
    log_path = tmp_path / "demo.log"
    port = _free_port()
    # Only what a person running `make demo` could have set: nothing of this test session's settings.
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
    }
    environment.update(
        {"GATEHOUSE_DEMO_DIR": str(demo_dir), "PORT": str(port), "DEMO_PUBLIC_OPENS_IN_SECONDS": "3"}
    )
    with open(log_path, "wb") as log_file:
        demo = subprocess.Popen(
            [sys.executable, "-m", "portal.demo"],
            cwd=REPO_DIR,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        site = f"http://127.0.0.1:{port}"
        _wait_for(
            lambda: _status_of(f"{site}/") == 200,
            timeout=60,
            what="the catalogue",
            demo=demo,
            log_path=log_path,
        )
        assert _status_of(f"{site}/accounts/login/") == 200
        assert _status_of(f"{site}/models/acme/llama-lite/") == 200

        # Only a beat process sending the scan and a worker running it over the filesystem broker open it.
        opened_at = _wait_for(
            lambda: _public_tier_opened_at(demo_dir / "db.sqlite3"),
            timeout=30,
            what="the Public tier to open",
            demo=demo,
            log_path=log_path,
        )
        assert opened_at

        running = _processes_of(demo_dir)
        commands = " | ".join(running.values())
        for part in ("portal.demo", "weed", "runserver", "worker", "beat"):
            assert part in commands, f"no {part} process among: {commands}"

        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=40) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()

    log = log_path.read_text(errors="replace")
    assert "publisher@demo.gatehouse" in log
    assert "gatehouse-demo" in log
    assert "demo stopped" in log
    assert _processes_of(demo_dir) == {}, "processes outlived the demo"
