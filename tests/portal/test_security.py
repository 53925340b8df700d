"""Production security settings: Django's deploy check, and the headers and cookies that reach the browser.

The deploy check runs as a process with production settings (portal.settings, DEBUG unset, SITE_URL on
https). The headers are read from a real gunicorn with the same settings, reached the way deploy/nginx
reaches it (X-Forwarded-Proto, X-Forwarded-For, TRUSTED_PROXY_COUNT=1). The Content Security Policy's
contents, which do not depend on https, are checked with the test client.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

import httpx2
import pytest
from django.conf import settings

from portal import csp
from tests.factories import PASSWORD, UserFactory
from tests.portal.server import base_env, gunicorn_server
from tests.processes import test_database_url

HOST = "gatehouse.example.org"
SITE_URL = f"https://{HOST}"
STRICT_POLICY = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "object-src": {"'none'"},
    "base-uri": {"'self'"},
    "frame-ancestors": {"'none'"},
    "form-action": {"'self'"},
}


def production_env(**extra: str) -> dict[str, str]:
    # The deploy check does not connect to the database; gunicorn gets the test database's URL.
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gatehouse")
    return base_env(**{"SITE_URL": SITE_URL, "ALLOWED_HOSTS": HOST, "DATABASE_URL": database_url, **extra})


def deploy_check(**extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=production_env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def policy_of(header: str) -> dict[str, set[str]]:
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = set(sources)
    return directives


# --- manage.py check --deploy -------------------------------------------------------------------


def test_deploy_check_passes_with_production_settings():
    result = deploy_check()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "check_id"),
    [
        ("SECURE_HSTS_SECONDS", "0", "security.W004"),
        ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "false", "security.W005"),
        ("SECURE_SSL_REDIRECT", "false", "security.W008"),
        ("SECURE_HSTS_PRELOAD", "false", "security.W021"),
        # A site on plain http gets neither HSTS nor secure cookies.
        ("SITE_URL", f"http://{HOST}", "security.W012"),
        ("DEBUG", "true", "security.W018"),
    ],
)
def test_deploy_check_fails_and_names_the_check_when_a_protection_is_off(variable, value, check_id):
    result = deploy_check(**{variable: value})

    assert result.returncode != 0
    assert check_id in result.stderr


# --- What reaches the browser, from gunicorn behind the proxy's headers ---------------------------


@pytest.fixture
def production_site(transactional_db, tmp_path):
    """gunicorn with production settings on the test database, behind one trusted proxy."""
    env = production_env(DATABASE_URL=test_database_url(), TRUSTED_PROXY_COUNT="1")
    with gunicorn_server(env, tmp_path) as url:
        yield url


def through_proxy(client_address: str = "203.0.113.7") -> dict[str, str]:
    """The headers deploy/nginx adds to every request it passes on."""
    return {"Host": HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": client_address}


def set_cookie(response: httpx2.Response, name: str) -> tuple[str, set[str]]:
    """The value of cookie ``name`` the response sets, and its attributes' names (secure, httponly, ...)."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            value, *attributes = header.split(";")
            return value.split("=", 1)[1], {
                attribute.strip().split("=")[0].lower() for attribute in attributes
            }
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


def test_pages_carry_the_security_headers_and_the_session_cookie_is_secure(production_site):
    user = UserFactory()
    with httpx2.Client(base_url=production_site, headers=through_proxy(), follow_redirects=False) as browser:
        login_page = browser.get("/accounts/login/")
        assert login_page.status_code == 200
        hsts = login_page.headers["Strict-Transport-Security"]
        assert hsts == "max-age=31536000; includeSubDomains; preload"
        assert policy_of(login_page.headers["Content-Security-Policy"]).items() >= STRICT_POLICY.items()
        assert login_page.headers["X-Content-Type-Options"] == "nosniff"
        assert login_page.headers["Referrer-Policy"] == "same-origin"
        assert login_page.headers["X-Frame-Options"] == "DENY"
        csrf_cookie, csrf_cookie_attributes = set_cookie(login_page, "csrftoken")
        assert "secure" in csrf_cookie_attributes

        csrf_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
        signed_in = browser.post(
            "/accounts/login/",
            data={"login": user.email, "password": PASSWORD, "csrfmiddlewaretoken": csrf_token},
            # The browser talks https to the proxy and sends its Secure cookie; this client talks
            # plain http to gunicorn, so it would rightly keep the cookie to itself.
            headers={
                "Origin": SITE_URL,
                "Referer": f"{SITE_URL}/accounts/login/",
                "Cookie": f"csrftoken={csrf_cookie}",
            },
        )

    assert signed_in.status_code == 302, signed_in.text
    _, session_cookie_attributes = set_cookie(signed_in, "sessionid")
    assert {"secure", "httponly"} <= session_cookie_attributes
    assert signed_in.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_plain_http_is_redirected_to_https(production_site):
    headers = {**through_proxy(), "X-Forwarded-Proto": "http"}

    response = httpx2.get(f"{production_site}/accounts/login/?next=/review/", headers=headers)

    assert response.status_code == 301
    assert response.headers["Location"] == f"{SITE_URL}/accounts/login/?next=/review/"
    # HSTS is only ever sent over https: over http it could be injected or stripped.
    assert "Strict-Transport-Security" not in response.headers


def test_the_liveness_probe_answers_over_plain_http(production_site):
    """A load balancer probes the app directly, without the proxy's headers (SECURE_REDIRECT_EXEMPT)."""
    response = httpx2.get(f"{production_site}/healthz", headers={"Host": HOST})

    assert response.status_code == 200


# --- The Content Security Policy's contents ---------------------------------------------------------


def test_policy_lets_pages_reach_only_the_site_and_the_object_storage(client, s3):
    storage_origin = "{0.scheme}://{0.netloc}".format(urlsplit(s3.endpoint_url))

    response = client.get("/accounts/login/", secure=True)

    policy = policy_of(response.headers["Content-Security-Policy"])
    assert policy.items() >= STRICT_POLICY.items()
    # The browser uploader PUTs parts straight to the bucket (releases/static/releases/upload.js).
    assert policy["connect-src"] == {"'self'", storage_origin}


def test_policy_follows_the_storage_settings(client, settings):
    settings.S3_ENDPOINT_URL = "https://objects.example.net:9000"
    settings.S3_ACCESS_KEY_ID = "key"
    settings.S3_SECRET_ACCESS_KEY = "secret"  # noqa: S105
    settings.S3_ADDRESSING_STYLE = "path"

    response = client.get("/accounts/login/")

    assert policy_of(response.headers["Content-Security-Policy"])["connect-src"] == {
        "'self'",
        "https://objects.example.net:9000",
    }


def test_policy_names_the_bucket_host_with_virtual_hosted_addressing(settings):
    settings.S3_ENDPOINT_URL = "https://objects.example.net"
    settings.S3_BUCKET = "weights"
    settings.S3_ACCESS_KEY_ID = "key"
    settings.S3_SECRET_ACCESS_KEY = "secret"  # noqa: S105
    settings.S3_ADDRESSING_STYLE = "virtual"

    assert csp.storage_origin() == "https://weights.objects.example.net"


def test_api_docs_page_runs_only_scripts_the_policy_allows(client):
    """django-ninja's Swagger UI loads its code from static files and its settings from a JSON data
    block, which the policy does not treat as a script; tests/e2e checks it renders under the policy."""
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    policy = policy_of(response.headers["Content-Security-Policy"])
    assert policy["script-src"] == {"'self'"}
    page = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>", page)
    assert scripts
    for attributes in scripts:
        assert "src=" in attributes or 'type="application/json"' in attributes, attributes
    assert " style=" not in page and "<style" not in page


def test_no_template_carries_inline_code_or_styles():
    """The policy refuses inline <script>, <style>, style="" and on*="" handlers: they belong in static
    files (portal/static/portal/site.css and site.js). A JSON data block is allowed: it never runs."""
    offenders = []
    for app_dir in ("portal", "access", "releases", "api"):
        for template in (settings.BASE_DIR / app_dir).rglob("templates/**/*.html"):
            text = template.read_text()
            inline_scripts = [
                tag
                for tag in re.findall(r"<script[^>]*>", text)
                if "src=" not in tag and 'type="application/json"' not in tag
            ]
            inline_styles = re.findall(r"<style|\sstyle=|\son[a-z]+=", text)
            if inline_scripts or inline_styles:
                name = template.relative_to(settings.BASE_DIR)
                offenders.append(f"{name}: {inline_scripts + inline_styles}")
    assert offenders == []
