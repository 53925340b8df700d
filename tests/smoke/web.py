"""HTTP helpers of the smoke: clients that come from a chosen loopback address, forms, e-mails, checks.

Every client connects to nginx's TLS port and verifies the smoke's self-signed certificate. Linux answers
on all of 127.0.0.0/8, so a client bound to 127.0.0.3 is, to nginx, a visitor from another address than the
smoke's own processes (127.0.0.1): that is how the smoke checks what "from outside" means (/metrics), which
address Django records behind the proxy, and per-address rate limits without tripping over its own.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from html.parser import HTMLParser
from pathlib import Path

import httpx2

from tests.smoke.stack import SmokeFailure
from tests.smtp_sink import ReceivedMessage

# A client's own claim about its address, which nginx must pass on but Django must not believe.
SPOOFED_FORWARDED_FOR = "203.0.113.66"
TIMEOUT_SECONDS = 30.0


def expect(condition: object, message: str, details: str = "") -> None:
    """An assertion that survives ``python -O`` and says what a person would check."""
    if not condition:
        raise SmokeFailure(message, details)


def eventually(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    """Whether ``condition`` becomes true within ``timeout`` seconds (for what is written just after a
    response: a log line)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Site:
    """Where the smoke reaches nginx: the TLS site, the plain-HTTP port, and the certificate to trust."""

    def __init__(self, *, https_port: int, http_port: int, certificate: Path) -> None:
        self.url = f"https://127.0.0.1:{https_port}"
        self.http_url = f"http://127.0.0.1:{http_port}"
        self.ssl_context = ssl.create_default_context(cafile=str(certificate))

    def client(self, source_address: str) -> httpx2.Client:
        """A browser-like client (its own cookie jar) connecting from ``source_address``."""
        transport = httpx2.HTTPTransport(
            verify=self.ssl_context, local_address=source_address, trust_env=False
        )
        return httpx2.Client(
            base_url=self.url,
            transport=transport,
            trust_env=False,
            timeout=TIMEOUT_SECONDS,
            headers={"X-Forwarded-For": SPOOFED_FORWARDED_FOR, "User-Agent": "gatehouse-smoke"},
        )

    def plain_client(self, source_address: str) -> httpx2.Client:
        """A client for nginx's plain-HTTP port."""
        transport = httpx2.HTTPTransport(local_address=source_address, trust_env=False)
        return httpx2.Client(
            base_url=self.http_url, transport=transport, trust_env=False, timeout=TIMEOUT_SECONDS
        )

    def submit(
        self, client: httpx2.Client, path: str, page: httpx2.Response, **fields: str
    ) -> httpx2.Response:
        """POST a form as a browser does: the CSRF token and hidden fields of the page, Origin, Referer."""
        data = {**hidden_inputs(page.text), **fields}
        expect("csrfmiddlewaretoken" in data, f"no CSRF token in the form at {page.url}", page.text[:2000])
        return client.post(path, data=data, headers={"Origin": self.url, "Referer": str(page.url)})


class _InputCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "input" and attributes.get("type") == "hidden" and attributes.get("name"):
            self.hidden[attributes["name"] or ""] = attributes.get("value") or ""


def hidden_inputs(html: str) -> dict[str, str]:
    collector = _InputCollector()
    collector.feed(html)
    return collector.hidden


def expect_status(response: httpx2.Response, status: int, what: str) -> httpx2.Response:
    expect(
        response.status_code == status,
        f"{what}: expected {status}, got {response.status_code} for {response.request.method} "
        f"{response.request.url}",
        f"Location: {response.headers.get('location')}\n{response.text[:3000]}",
    )
    return response


def expect_redirect(response: httpx2.Response, what: str, to: str | None = None) -> str:
    expect(
        response.status_code in (301, 302, 303),
        f"{what}: expected a redirect, got {response.status_code} for {response.request.url}",
        response.text[:3000],
    )
    location = response.headers["location"]
    if to is not None:
        expect(re.fullmatch(to, location), f"{what}: redirected to {location}, expected {to}")
    return location


def message_text(message: ReceivedMessage) -> str:
    parsed = message_from_bytes(message.data, policy=policy.default)
    body = parsed.get_body(preferencelist=("plain", "html"))
    return body.get_content() if body is not None else ""


def messages_to(messages: list[ReceivedMessage], address: str) -> list[ReceivedMessage]:
    return [message for message in messages if address in message.recipients]


def subject(message: ReceivedMessage) -> str:
    return str(message_from_bytes(message.data, policy=policy.default)["Subject"])
