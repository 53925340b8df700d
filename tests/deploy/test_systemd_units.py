"""deploy/systemd: the units pass ``systemd-analyze verify`` and start what the smoke starts.

The units name /opt/gatehouse, the install path deploy/README.md uses; for verification they are copied
with that path replaced by this checkout, so that systemd checks the very scripts the smoke runs (verify
refuses an ExecStart that is not an executable file). On a machine without systemd-analyze that one test
is skipped, and the structural tests below are what remains.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.deploy.files import REPO_DIR, SYSTEMD_DIR, check_variable, secret_variables

SERVICES = {
    "gatehouse-web.service": "web",
    "gatehouse-worker@.service": "worker",
    "gatehouse-beat.service": "beat",
    "gatehouse-release.service": "release",
}


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """A unit's sections as lists of (key, value): systemd keys repeat (Environment=, LoadCredential=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in (SYSTEMD_DIR / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key, value))
    return sections


def values(name: str, section: str, key: str) -> list[str]:
    return [value for found, value in unit(name).get(section, []) if found == key]


def environment(name: str) -> dict[str, str]:
    pairs = [value.split("=", 1) for value in values(name, "Service", "Environment")]
    return dict(pairs)


def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed here; the structural tests below still run")
    for path in SYSTEMD_DIR.iterdir():
        (tmp_path / path.name).write_text(path.read_text().replace("/opt/gatehouse", str(REPO_DIR)))
    units = [str(tmp_path / name) for name in ("gatehouse-web.service", "gatehouse-beat.service")]
    units += [str(tmp_path / "gatehouse-release.service"), str(tmp_path / "gatehouse.target")]
    # A template is verified through an instance of it.
    units.append(str(tmp_path / "gatehouse-worker@1.service"))
    completed = subprocess.run(
        [verify, "verify", "--man=no", *units], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    # Unknown keys are only warnings to systemd (exit status 0): any output at all is a failure here.
    assert (completed.returncode, completed.stdout + completed.stderr) == (0, "")


@pytest.mark.parametrize(("name", "script"), SERVICES.items())
def test_each_service_runs_its_deploy_script_from_the_checkout(name, script):
    assert values(name, "Service", "ExecStart") == [f"/opt/gatehouse/deploy/bin/{script}"]
    assert values(name, "Service", "WorkingDirectory") == ["/opt/gatehouse"]
    assert values(name, "Service", "User") == ["gatehouse"]


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_reads_the_environment_file_and_its_secrets_as_credentials(name):
    assert values(name, "Service", "EnvironmentFile") == ["/etc/gatehouse/env"]
    credentials = dict(value.split(":", 1) for value in values(name, "Service", "LoadCredential"))
    files = {key: value for key, value in environment(name).items() if key.endswith("_FILE")}
    # Every secret comes in as a credential, and every credential is read through its *_FILE variable.
    assert {value.removeprefix("%d/") for value in files.values()} == set(credentials)
    assert all(value.startswith("%d/") for value in files.values())
    assert {"SECRET_KEY_FILE", "S3_SECRET_ACCESS_KEY_FILE", "EMAIL_HOST_PASSWORD_FILE"} <= set(files)
    assert {key.removesuffix("_FILE") for key in files} <= secret_variables()
    assert all(path.startswith("/etc/gatehouse/credentials/") for path in credentials.values())


@pytest.mark.parametrize("name", SERVICES)
def test_each_variable_a_unit_sets_is_read_by_something(name):
    problems = [problem for variable in environment(name) if (problem := check_variable(variable))]
    assert problems == []


def test_workers_are_a_template_with_a_node_name_per_instance():
    assert environment("gatehouse-worker@.service")["CELERY_WORKER_NAME"] == "worker-%i"


def test_only_the_web_process_keeps_prometheus_files():
    have_it = {name for name in SERVICES if "PROMETHEUS_MULTIPROC_DIR" in environment(name)}
    assert have_it == {"gatehouse-web.service"}
    assert values("gatehouse-web.service", "Service", "RuntimeDirectory") == ["gatehouse-web"]


def test_beat_keeps_its_schedule_in_its_state_directory():
    assert environment("gatehouse-beat.service")["GATEHOUSE_VAR_DIR"] == "%S/gatehouse-beat"
    assert values("gatehouse-beat.service", "Service", "StateDirectory") == ["gatehouse-beat"]


def test_long_running_services_belong_to_the_target_and_release_does_not():
    for name in ("gatehouse-web.service", "gatehouse-worker@.service", "gatehouse-beat.service"):
        assert values(name, "Unit", "PartOf") == ["gatehouse.target"]
        assert values(name, "Install", "WantedBy") == ["gatehouse.target"]
    assert values("gatehouse-release.service", "Service", "Type") == ["oneshot"]
    assert not values("gatehouse-release.service", "Install", "WantedBy")
