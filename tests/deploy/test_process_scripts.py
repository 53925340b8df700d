"""deploy/bin/* and deploy/gunicorn.conf.py: what the smoke does not show by running them successfully.

The smoke starts web, workers and beat from these scripts; here: a bad variable stops the web process at
once with its name (the master preloads the settings), the gunicorn configuration reads its variables and
manages prometheus_client's multiprocess directory, and the scripts find the checkout and the interpreter
from anywhere.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.deploy.files import BIN_DIR, DEPLOY_DIR, PROCESS_SCRIPTS, REPO_DIR
from tests.smoke.stack import free_ports

GUNICORN_CONFIG = DEPLOY_DIR / "gunicorn.conf.py"
START_TIMEOUT_SECONDS = 60


def web_environment(**overrides: str) -> dict[str, str]:
    """Production settings that would start, but for ``overrides``; nothing here needs a database."""
    (port,) = free_ports(1)
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "GUNICORN_", "PROMETHEUS_", "WEB_CONCURRENCY"))
    }
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "SECRET_KEY": "a-secret-key-that-is-long-enough-for-the-settings",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            **overrides,
        }
    )
    return environment


def start_web(environment: dict[str, str]) -> subprocess.CompletedProcess:
    """Run deploy/bin/web from another directory; fail the test if it starts serving instead of stopping."""
    try:
        return subprocess.run(
            [str(BIN_DIR / "web")],
            env=environment,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as timeout:
        pytest.fail(f"deploy/bin/web kept running with a bad setting:\n{timeout.stderr}")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DOWNLOAD_URL_LIFETIME_SECONDS", "ten minutes"), ("SITE_URL", "ftp://gatehouse.example.org")],
)
def test_web_stops_at_once_naming_a_bad_setting(variable, value):
    completed = start_web(web_environment(**{variable: value}))
    assert completed.returncode != 0
    assert variable in completed.stderr
    assert "Booting worker" not in completed.stderr


@pytest.mark.parametrize(
    ("variable", "value"), [("WEB_CONCURRENCY", "many"), ("GUNICORN_TIMEOUT", "0"), ("WEB_CONCURRENCY", "65")]
)
def test_web_stops_at_once_naming_a_bad_gunicorn_variable(variable, value):
    completed = start_web(web_environment(**{variable: value}))
    assert completed.returncode != 0
    assert variable in completed.stderr


def load_gunicorn_config(monkeypatch, **environment: str) -> dict:
    for name in ("GUNICORN_BIND", "WEB_CONCURRENCY", "GUNICORN_TIMEOUT", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONFIG))


def test_gunicorn_defaults(monkeypatch):
    config = load_gunicorn_config(monkeypatch)
    assert config["bind"] == ["127.0.0.1:8000"]
    assert (config["workers"], config["timeout"], config["worker_class"]) == (2, 30, "sync")
    assert config["preload_app"] is True
    assert config["max_requests"] > 0 and 0 < config["max_requests_jitter"] < config["max_requests"]
    assert (config["accesslog"], config["errorlog"]) == ("-", "-")
    assert config["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert config["control_socket_disable"] is True


def test_gunicorn_reads_its_variables(monkeypatch, tmp_path):
    config = load_gunicorn_config(
        monkeypatch,
        GUNICORN_BIND="0.0.0.0:9000",
        WEB_CONCURRENCY="5",
        GUNICORN_TIMEOUT="45",
        FORWARDED_ALLOW_IPS="*",
        GUNICORN_CONTROL_SOCKET=str(tmp_path / "gunicorn.ctl"),
    )
    assert (config["bind"], config["workers"], config["timeout"]) == (["0.0.0.0:9000"], 5, 45)
    assert config["forwarded_allow_ips"] == "*"
    assert config["control_socket"] == str(tmp_path / "gunicorn.ctl")
    assert "control_socket_disable" not in config


def test_the_metrics_directory_is_made_at_load_and_emptied_when_the_master_starts(monkeypatch, tmp_path):
    directory = tmp_path / "run" / "prometheus"
    config = load_gunicorn_config(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(directory))
    # Before the app is preloaded: the settings refuse a directory that does not exist.
    assert directory.is_dir()
    (directory / "counter_4242.db").write_bytes(b"left over")
    (directory / "stale").mkdir()
    logged = []
    config["on_starting"](SimpleNamespace(log=SimpleNamespace(info=lambda *args: logged.append(args))))
    assert list(directory.iterdir()) == []
    assert logged


def test_a_dead_workers_live_gauges_are_dropped(monkeypatch, tmp_path):
    config = load_gunicorn_config(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    (tmp_path / "counter_4242.db").write_bytes(b"")
    config["child_exit"](None, SimpleNamespace(pid=4242))
    # prometheus_client's rule: a dead process's live gauges go, its counters still count.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["counter_4242.db"]


@pytest.mark.parametrize("script", [*PROCESS_SCRIPTS, "render-nginx"])
def test_each_script_is_strict_bash(script):
    path = BIN_DIR / script
    text = path.read_text()
    assert os.access(path, os.X_OK)
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0


@pytest.mark.parametrize("script", ["web", "worker", "beat"])
def test_long_running_scripts_exec_their_process(script):
    """exec: the script's pid becomes the server's, so systemd's and Docker's signals reach it."""
    text = (BIN_DIR / script).read_text()
    assert 'source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/common.sh"' in text
    assert '\nexec "$python" -m ' in text


def common_settings(cwd: Path, **environment: str) -> list[str]:
    """What deploy/lib/common.sh decides when sourced from ``cwd`` through a symlink to deploy/."""
    link = cwd / "linked-deploy"
    link.symlink_to(DEPLOY_DIR)
    completed = subprocess.run(
        ["bash", "-c", f'source "{link}/lib/common.sh"; echo "$PWD"; echo "$python"; echo "$var_dir"'],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.splitlines()


def test_the_scripts_find_the_checkout_and_its_interpreter_from_anywhere(tmp_path):
    pwd, python, var_dir = common_settings(tmp_path)
    assert pwd == str(REPO_DIR)
    expected = REPO_DIR / ".venv" / "bin" / "python"
    assert python == (str(expected) if expected.exists() else "python3")
    assert var_dir == "var"


def test_gatehouse_python_and_var_dir_are_honoured(tmp_path):
    _, python, var_dir = common_settings(
        tmp_path, GATEHOUSE_PYTHON=sys.executable, GATEHOUSE_VAR_DIR="/srv/x"
    )
    assert (python, var_dir) == (sys.executable, "/srv/x")
