"""deploy/nginx/gatehouse.conf.template rendered by deploy/bin/render-nginx, and checked by nginx itself.

The smoke (make smoke) runs this configuration and checks what it does; here: it renders completely, nginx
accepts it (``nginx -t``, in the same main configuration the smoke uses), and a missing value is refused.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.deploy.files import BIN_DIR, render_nginx_variables, template_placeholders
from tests.smoke.stack import nginx_command, nginx_main_config, self_signed_certificate


@pytest.fixture
def site_values(tmp_path) -> dict[str, str]:
    certificate, key = self_signed_certificate(tmp_path)
    (tmp_path / "static").mkdir()
    return {
        "GATEHOUSE_SERVER_NAME": "gatehouse.example.org",
        "GATEHOUSE_LISTEN_ADDRESS": "127.0.0.1",
        "GATEHOUSE_HTTP_PORT": "8080",
        "GATEHOUSE_HTTPS_PORT": "8443",
        "GATEHOUSE_TLS_CERT": str(certificate),
        "GATEHOUSE_TLS_KEY": str(key),
        "GATEHOUSE_UPSTREAM": "127.0.0.1:8000",
        "GATEHOUSE_STATIC_ROOT": str(tmp_path / "static"),
        "GATEHOUSE_ACCESS_LOG": str(tmp_path / "access.log"),
    }


def render(values: dict[str, str]) -> subprocess.CompletedProcess:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GATEHOUSE_")}
    return subprocess.run(
        [str(BIN_DIR / "render-nginx")],
        env={**environment, **values},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_renderer_and_the_template_name_the_same_variables():
    assert set(render_nginx_variables()) == template_placeholders()


def test_rendering_fills_every_placeholder_and_keeps_nginx_variables(site_values):
    completed = render(site_values)
    assert completed.returncode == 0, completed.stderr
    site = completed.stdout
    assert "${" not in site
    assert "listen 127.0.0.1:8443 ssl;" in site
    assert "server 127.0.0.1:8000;" in site
    for nginx_variable in ("$request_id", "$proxy_add_x_forwarded_for", "$binary_remote_addr", "$http_host"):
        assert nginx_variable in site


def test_nginx_accepts_the_rendered_site(site_values, tmp_path):
    site_file = tmp_path / "gatehouse.conf"
    site_file.write_text(render(site_values).stdout)
    config = nginx_main_config(tmp_path, site_file)
    completed = subprocess.run(
        [*nginx_command(config, tmp_path), "-t"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "test is successful" in completed.stderr


def test_nginx_rejects_a_broken_site(site_values, tmp_path):
    """The check above can fail: a site with one directive misspelt is refused."""
    site_file = tmp_path / "gatehouse.conf"
    site_file.write_text(render(site_values).stdout.replace("proxy_read_timeout", "proxy_reed_timeout"))
    config = nginx_main_config(tmp_path, site_file)
    completed = subprocess.run(
        [*nginx_command(config, tmp_path), "-t"], capture_output=True, text=True, check=False
    )
    assert completed.returncode != 0
    assert "proxy_reed_timeout" in completed.stderr


def test_rendering_refuses_a_missing_value_and_prints_nothing(site_values):
    del site_values["GATEHOUSE_TLS_KEY"]
    site_values["GATEHOUSE_UPSTREAM"] = ""
    completed = render(site_values)
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr == "render-nginx: set GATEHOUSE_TLS_KEY GATEHOUSE_UPSTREAM\n"
