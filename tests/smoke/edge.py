"""What nginx and the security settings add at the edge, checked through nginx as a visitor sees it.

Each check reads a real response: the security headers of a page, the session cookie's flags, the request
id that nginx made and logged, the redirect from plain HTTP, the health check on plain HTTP, static files
with their cache headers, /metrics refused from outside (and served, with its token, from the host itself),
the API's body limit, and the rate limits of the sign-in and download routes answering 429.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx2

from tests.smoke.stack import REPO_DIR
from tests.smoke.web import Site, eventually, expect, expect_status

# Separate addresses for the rate-limit probes: each has its own counters in nginx's zones.
LOGIN_PROBE_ADDRESS = "127.0.0.4"
DOWNLOAD_PROBE_ADDRESS = "127.0.0.5"
OUTSIDE_ADDRESS = "127.0.0.3"
HOST_ADDRESS = "127.0.0.1"
STATIC_FILE = "releases/upload.js"


def security_headers(site: Site, access_log: Path) -> None:
    """A page through nginx carries the security headers, a secure session cookie and nginx's request id."""
    with site.client(OUTSIDE_ADDRESS) as client:
        page = expect_status(client.get("/accounts/login/"), 200, "the sign-in page")
        headers = page.headers
        hsts = headers.get("strict-transport-security", "")
        expect("max-age=" in hsts, f"no Strict-Transport-Security on a page (got {hsts!r})")
        expect(headers.get("content-security-policy"), "no Content-Security-Policy on a page")
        expect(headers.get("x-frame-options", "").upper() == "DENY", "X-Frame-Options is not DENY")
        expect(headers.get("x-content-type-options") == "nosniff", "X-Content-Type-Options is not nosniff")
        expect(headers.get("referrer-policy"), "no Referrer-Policy on a page")
        request_id = headers.get("x-request-id", "")
        expect(
            len(request_id) == 32, f"the response's X-Request-ID is {request_id!r}, not nginx's $request_id"
        )
        # nginx writes its log line once the response is sent: it may come a moment after we read it.
        logged = f"request_id={request_id}"
        expect(
            eventually(lambda: logged in access_log.read_text(errors="replace")),
            f"the X-Request-ID {request_id} of the response is not the one nginx logged",
        )
        cookies = [value for value in headers.get_list("set-cookie") if value.startswith("csrftoken=")]
        expect(cookies and "secure" in cookies[0].lower(), f"the CSRF cookie is not Secure: {cookies}")


def session_cookie_flags(set_cookie_headers: list[str]) -> None:
    sessions = [value for value in set_cookie_headers if value.startswith("sessionid=")]
    expect(sessions, f"signing in set no session cookie: {set_cookie_headers}")
    flags = {part.strip().lower() for part in sessions[0].split(";")}
    expect({"secure", "httponly"} <= flags, f"the session cookie lacks Secure or HttpOnly: {sessions[0]}")


def plain_http(site: Site) -> None:
    """Port 80 sends everything to HTTPS, with the path, except the health check."""
    with site.plain_client(OUTSIDE_ADDRESS) as client:
        response = client.get("/accounts/login/?next=/me/tokens/")
        expect(
            response.status_code == 301
            and response.headers.get("location") == f"{site.url}/accounts/login/?next=/me/tokens/",
            f"plain HTTP answered {response.status_code} to {response.headers.get('location')!r}, "
            f"not 301 to {site.url}/accounts/login/?next=/me/tokens/",
        )
        expect_status(client.get("/healthz"), 200, "the health check on plain HTTP")


def static_files(site: Site) -> None:
    """nginx serves collectstatic's output itself, with a cache lifetime and nosniff."""
    with site.client(OUTSIDE_ADDRESS) as client:
        response = expect_status(client.get(f"/static/{STATIC_FILE}"), 200, "a static file")
    source = (REPO_DIR / "releases" / "static" / STATIC_FILE).read_bytes()
    expect(response.content == source, f"/static/{STATIC_FILE} is not the file in the repository")
    expect("max-age=" in response.headers.get("cache-control", ""), "a static file has no cache lifetime")
    expect(response.headers.get("x-content-type-options") == "nosniff", "a static file lacks nosniff")


def metrics(site: Site, token: str) -> None:
    """/metrics is refused by nginx from outside; from the host itself, with its token, it answers."""
    with site.client(OUTSIDE_ADDRESS) as client:
        expect_status(
            client.get("/metrics", headers={"Authorization": f"Bearer {token}"}), 403, "/metrics from outside"
        )
    with site.client(HOST_ADDRESS) as client:
        response = expect_status(
            client.get("/metrics", headers={"Authorization": f"Bearer {token}"}),
            200,
            "/metrics from the host",
        )
        expect(
            "# TYPE " in response.text,
            "/metrics did not answer Prometheus' text format",
            response.text[:1000],
        )
        anonymous = client.get("/metrics")
        expect(
            anonymous.status_code in (401, 403),
            f"/metrics without the token answered {anonymous.status_code}",
        )


def api_body_limit(site: Site, tier_id: int) -> None:
    """nginx refuses an API body over 64 KiB before gunicorn sees it, in the API's JSON error format."""
    body = json.dumps({"affiliation": "x" * (100 * 1024)})
    with site.client(OUTSIDE_ADDRESS) as client:
        response = client.post(
            f"/api/v1/tiers/{tier_id}/applications",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    expect_status(response, 413, "a 100 KiB API body")
    expect(
        response.json().get("error") == "body_too_large", f"the 413 is not the API's JSON: {response.text}"
    )


def until_refused(send: Callable[[], httpx2.Response], attempts: int) -> tuple[list[int], httpx2.Response]:
    """Statuses of ``send()`` repeated until nginx answers 429 (or ``attempts`` run out), and the last
    response."""
    statuses: list[int] = []
    while True:
        response = send()
        statuses.append(response.status_code)
        if response.status_code == 429 or len(statuses) >= attempts:
            return statuses, response


def login_rate_limit(site: Site) -> None:
    """Sign-in POSTs from one address meet 429 after the burst (10); the page itself stays reachable."""
    with site.client(LOGIN_PROBE_ADDRESS) as client:
        # Without a CSRF token: Django refuses each one cheaply, and nginx counts them all the same.
        statuses, _ = until_refused(
            lambda: client.post("/accounts/login/", data={"login": "x", "password": "y"}), 40
        )
        expect(
            statuses[-1] == 429 and len(statuses) > 10,
            f"quick sign-in POSTs answered {statuses}: not refused after the burst",
        )
        expect_status(client.get("/accounts/login/"), 200, "the sign-in page after the limit")


def download_rate_limit(site: Site, artifact_id: int, model_path: str, revision: str) -> None:
    """Past the burst (100), every download route answers 429 to that address: they share one zone.

    Once the bucket is full, nginx lets one more request through every 200 ms (5 a second), so each route
    gets a few tries to meet its 429.
    """
    with site.client(DOWNLOAD_PROBE_ADDRESS) as client:
        api = f"/api/v1/artifacts/{artifact_id}/download-url"
        statuses, refused = until_refused(lambda: client.post(api), 400)
        expect(
            statuses[-1] == 429 and len(statuses) > 100,
            f"{len(statuses)} quick download-url requests ended {statuses[-3:]}: not refused after the burst",
        )
        expect(
            refused.json().get("error") == "rate_limited",
            f"nginx's 429 is not the API's JSON: {refused.text}",
        )
        for path in (
            f"/artifacts/{artifact_id}/download",
            f"/{model_path}/resolve/{revision}/model.safetensors",
        ):
            statuses, _ = until_refused(lambda path=path: client.get(path), 5)
            expect(statuses[-1] == 429, f"{path} answered {statuses} after the download limit")
