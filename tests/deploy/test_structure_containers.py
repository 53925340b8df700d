"""Structural checks of deploy/compose.yaml and deploy/Dockerfile, which this machine cannot run.

There is no Docker engine here, so the container files are never built or started by the tests. These
checks keep them from drifting away from what the tests do run: every application container runs one of
deploy/bin/* (the scripts the smoke runs), every variable they set is one the settings or the deploy files
read, every secret file variable points at a mounted secret, nginx renders the very template the smoke
renders with the same variables, and the image installs the hashed lock file as a non-root user.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.files import (
    BIN_DIR,
    DEPLOY_DIR,
    REPO_DIR,
    TEMPLATE,
    check_variable,
    render_nginx_variables,
    template_placeholders,
)

APPLICATION_SERVICES = ("release", "web", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY_DIR / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (DEPLOY_DIR / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_stack_has_every_part(compose):
    assert set(compose["services"]) == {
        "postgres",
        "redis",
        "seaweedfs",
        "release",
        "web",
        "worker",
        "beat",
        "nginx",
    }


@pytest.mark.parametrize("service", APPLICATION_SERVICES)
def test_each_application_service_runs_a_deploy_script_of_the_image(compose, service):
    definition = compose["services"][service]
    assert definition["build"]["dockerfile"] == "deploy/Dockerfile"
    [command] = definition["command"]
    assert command == f"/app/deploy/bin/{service}"
    assert (BIN_DIR / service).is_file()


@pytest.mark.parametrize("service", APPLICATION_SERVICES)
def test_each_variable_an_application_service_sets_is_read_by_something(compose, service):
    environment = compose["services"][service]["environment"]
    problems = [problem for name in environment if (problem := check_variable(name))]
    assert problems == []


@pytest.mark.parametrize("service", APPLICATION_SERVICES)
def test_each_secret_file_variable_points_at_a_secret_the_service_mounts(compose, service):
    definition = compose["services"][service]
    mounted = set(definition.get("secrets", []))
    for name, value in definition["environment"].items():
        if name.endswith("_FILE"):
            secret = value.removeprefix("/run/secrets/")
            assert value.startswith("/run/secrets/") and secret in mounted, (name, value)
            assert secret in compose["secrets"], secret


def test_only_the_web_process_keeps_prometheus_files(compose):
    """Celery processes must not write into gunicorn's multiprocess directory."""
    have_it = {
        service
        for service in APPLICATION_SERVICES
        if "PROMETHEUS_MULTIPROC_DIR" in compose["services"][service]["environment"]
    }
    assert have_it == {"web"}


def test_web_workers_and_beat_wait_for_the_release_step(compose):
    for service in ("web", "worker", "beat"):
        assert compose["services"][service]["depends_on"]["release"] == {
            "condition": "service_completed_successfully"
        }
    assert compose["services"]["release"]["restart"] == "no"


def test_beat_is_never_replicated(compose):
    beat = compose["services"]["beat"]
    assert "replicas" not in beat.get("deploy", {})
    assert "scale" not in beat


def test_nginx_renders_the_deploy_template_with_exactly_its_variables(compose):
    nginx = compose["services"]["nginx"]
    mounts = [volume.split(":") for volume in nginx["volumes"]]
    [template_mount] = [mount for mount in mounts if mount[1].startswith("/etc/nginx/templates/")]
    assert (DEPLOY_DIR / template_mount[0]).resolve() == TEMPLATE
    assert template_mount[1].endswith(".conf.template")
    given = {name for name in nginx["environment"] if name.startswith("GATEHOUSE_")}
    assert given == template_placeholders() == set(render_nginx_variables())
    # The image substitutes only variables matching this filter: nginx's own $variables stay as they are.
    assert nginx["environment"]["NGINX_ENVSUBST_FILTER"] == "GATEHOUSE_"


def test_nginx_serves_the_static_files_the_release_step_collects(compose):
    release_static = [v for v in compose["services"]["release"]["volumes"] if v.startswith("static:")]
    nginx_static = [v for v in compose["services"]["nginx"]["volumes"] if v.startswith("static:")]
    assert release_static == ["static:/app/var/static"]
    assert nginx_static == [
        f"static:{compose['services']['nginx']['environment']['GATEHOUSE_STATIC_ROOT']}:ro"
    ]


def test_the_third_party_images_are_pinned(compose):
    for name in ("postgres", "redis", "seaweedfs", "nginx"):
        image = compose["services"][name]["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)


def test_the_dockerfile_starts_from_python_3_11_slim(dockerfile):
    assert dockerfile[0].startswith("FROM python:3.11-slim")


def test_the_dockerfile_installs_the_hashed_lock_file(dockerfile):
    copies = [line for line in dockerfile if line.startswith("COPY requirements/base.txt")]
    installs = [line for line in dockerfile if line.startswith("RUN pip install")]
    assert installs == ["RUN pip install --require-hashes -r requirements/base.txt"]
    assert dockerfile.index(copies[0]) < dockerfile.index(installs[0])
    assert (REPO_DIR / "requirements" / "base.txt").is_file()


def test_the_dockerfile_collects_static_files_and_runs_as_a_user_of_its_own(dockerfile):
    assert any("manage.py collectstatic --noinput" in line for line in dockerfile if line.startswith("RUN "))
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    [command] = [line for line in dockerfile if line.startswith(("CMD ", "ENTRYPOINT "))]
    assert command == 'CMD ["/app/deploy/bin/web"]'


def test_the_dockerfile_sets_only_variables_something_reads(dockerfile):
    [environment] = [line for line in dockerfile if line.startswith("ENV ")]
    names = re.findall(r"([A-Z][A-Z0-9_]*)=", environment)
    python_own = {
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "PIP_NO_CACHE_DIR",
        "PIP_DISABLE_PIP_VERSION_CHECK",
    }
    problems = [problem for name in names if name not in python_own and (problem := check_variable(name))]
    assert problems == []
