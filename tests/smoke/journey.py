"""The smoke's journey through nginx, as people make it: PRODUCT.md journeys 1 to 3 and 4's opening.

A researcher signs up and confirms the address from the e-mail, applies to the tier (its question, the
license accepted by typing their name), and asks to be told when the scheduled tier opens; the reviewer
signs in and approves on the review page; the researcher downloads the file: a 302 to SeaweedFS, whose
bytes must have the sha256 the portal shows. Then the scheduled tier must open by itself (beat and the
workers), once, and each watcher be told once.
"""

from __future__ import annotations

import hashlib
import re
import secrets

import httpx2

from access.models import Application, AuditEvent, DownloadEvent
from releases.models import Tier
from tests.smoke.edge import session_cookie_flags
from tests.smoke.seed import QUESTION_NAME, Person, Seeded
from tests.smoke.stack import Supervisor
from tests.smoke.web import (
    Site,
    expect,
    expect_redirect,
    expect_status,
    message_text,
    messages_to,
    subject,
)
from tests.smtp_sink import SMTPSink

# The address the researcher and reviewer come from (see tests/smoke/web.py).
VISITOR_ADDRESS = "127.0.0.3"
ROLLOUT_TICK_DONE = re.compile(r"Task releases\.tasks\.rollout_tick\[[^\]]+\] succeeded")


class Journey:
    def __init__(self, *, site: Site, sink: SMTPSink, supervisor: Supervisor, seeded: Seeded) -> None:
        self.site = site
        self.sink = sink
        self.supervisor = supervisor
        self.seeded = seeded
        self.researcher = Person(
            f"researcher-{secrets.token_hex(4)}@university.example",
            "Erin Example",
            f"smoke-{secrets.token_urlsafe(12)}",
        )
        self.browser = site.client(VISITOR_ADDRESS)
        self.application_id = 0

    def close(self) -> None:
        self.browser.close()

    # -- journey 1: sign up, confirm, apply, watch ---------------------------------------------------------

    def sign_up_and_confirm(self) -> None:
        form = expect_status(self.browser.get("/accounts/signup/"), 200, "the sign-up page")
        response = self.site.submit(
            self.browser,
            "/accounts/signup/",
            form,
            email=self.researcher.email,
            full_name=self.researcher.full_name,
            password1=self.researcher.password,
            password2=self.researcher.password,
        )
        expect_redirect(response, "signing up", to=r"/accounts/confirm-email/")
        [message] = self.supervisor.wait_for(
            lambda: messages_to(self.sink.messages, self.researcher.email), what="the confirmation e-mail"
        )
        link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message_text(message))
        expect(link, "no confirmation link in the e-mail", message_text(message))
        # Built by Django from the proxied request: https (X-Forwarded-Proto) and nginx's port (Host).
        expect(
            link.group(0).startswith(f"{self.site.url}/"),
            f"the e-mailed link {link.group(0)} does not start with the site's URL {self.site.url}/: "
            "Host or X-Forwarded-Proto did not reach Django as nginx sent them",
        )
        path = link.group(0).removeprefix(self.site.url)
        page = expect_status(self.browser.get(path), 200, "the confirmation page")
        expect_redirect(self.site.submit(self.browser, path, page), "confirming the address")
        home = expect_status(self.browser.get("/"), 200, "the catalogue after confirming")
        expect("Sign out" in home.text, "the researcher is not signed in after confirming", home.text[:2000])

    def apply(self) -> None:
        tier_id = self.seeded.application_tier_id
        tier_page = expect_status(self.browser.get(f"/tiers/{tier_id}/"), 200, "the tier page")
        expect("Do not redistribute them." in tier_page.text, "the tier page does not show its license")
        form = expect_status(self.browser.get(f"/tiers/{tier_id}/apply/"), 200, "the application form")
        response = self.site.submit(
            self.browser,
            f"/tiers/{tier_id}/apply/",
            form,
            affiliation="University of Examples",
            intended_use="Checking that the deployment works from end to end.",
            **{f"q_{QUESTION_NAME}": "0000-0002-1825-0097"},
            typed_name=self.researcher.full_name,
        )
        location = expect_redirect(response, "submitting the application", to=r"/me/applications/\d+/")
        self.application_id = int(location.rstrip("/").rsplit("/", 1)[1])
        page = expect_status(self.browser.get(location), 200, "the application page")
        expect("Pending review" in page.text, "the application is not pending review", page.text[:3000])

    def watch_scheduled_tier(self) -> None:
        tier_id = self.seeded.scheduled_tier_id
        page = expect_status(self.browser.get(f"/tiers/{tier_id}/"), 200, "the scheduled tier's page")
        expect_redirect(self.site.submit(self.browser, f"/tiers/{tier_id}/watch/", page), "watching the tier")

    # -- journey 2: the reviewer approves ------------------------------------------------------------------

    def reviewer_approves(self) -> None:
        reviewer = self.seeded.reviewer
        with self.site.client(VISITOR_ADDRESS) as desk:
            form = expect_status(desk.get("/accounts/login/"), 200, "the sign-in page")
            response = self.site.submit(
                desk, "/accounts/login/", form, login=reviewer.email, password=reviewer.password
            )
            expect_redirect(response, "the reviewer signing in")
            session_cookie_flags(response.headers.get_list("set-cookie"))
            review_path = f"/review/applications/{self.application_id}/"
            page = expect_status(desk.get(review_path), 200, "the review page")
            expect(self.researcher.email in page.text, "the review page does not show the applicant")
            response = self.site.submit(desk, review_path, page, decision="approve", reason="")
            expect_redirect(response, "approving", to=r"/review/[^/]+/")
        approved = "Your application for Smoke LM (Researchers) was approved"
        self.supervisor.wait_for(
            lambda: any(
                subject(message) == approved
                for message in messages_to(self.sink.messages, self.researcher.email)
            ),
            what="the approval e-mail (sent by a worker)",
        )

    # -- journey 3: download and check the sha256 ----------------------------------------------------------

    def download(self) -> None:
        tier_id = self.seeded.application_tier_id
        files = expect_status(self.browser.get(f"/tiers/{tier_id}/files/"), 200, "the files page")
        expect(self.seeded.artifact_sha256 in files.text, "the files page does not show the file's sha256")
        download_path = f"/artifacts/{self.seeded.artifact_id}/download"
        expect(download_path in files.text, "the files page has no download link", files.text[:3000])
        response = self.browser.get(download_path)
        location = expect_redirect(response, "the download")
        expect(
            "no-store" in response.headers.get("cache-control", ""),
            f"the download redirect may be cached: Cache-Control {response.headers.get('cache-control')!r}",
        )
        expect(location.startswith("http://127.0.0.1:"), f"the download went to {location}, not SeaweedFS")
        # The bytes come from the object store, with no cookie or header of the portal's.
        with httpx2.Client(trust_env=False, timeout=60) as storage_client:
            stored = expect_status(storage_client.get(location), 200, "the presigned URL")
        digest = hashlib.sha256(stored.content).hexdigest()
        expect(
            digest == self.seeded.artifact_sha256 and len(stored.content) == self.seeded.artifact_size,
            f"downloaded {len(stored.content)} bytes with sha256 {digest}; expected "
            f"{self.seeded.artifact_size} bytes with {self.seeded.artifact_sha256}",
        )

    def recorded_addresses(self) -> None:
        """Django saw the visitor's address, not nginx's and not the one the client claimed."""
        application = Application.objects.select_related("license_acceptance").get(pk=self.application_id)
        acceptance = application.license_acceptance
        event = DownloadEvent.objects.filter(artifact_id=self.seeded.artifact_id).latest("pk")
        expect(
            (acceptance.ip_address, event.ip_address) == (VISITOR_ADDRESS, VISITOR_ADDRESS),
            f"the license acceptance recorded {acceptance.ip_address} and the download {event.ip_address}; "
            f"expected the visitor's {VISITOR_ADDRESS} (TRUSTED_PROXY_COUNT=1 behind nginx)",
        )

    # -- journey 4: the scheduled tier opens by itself, once -----------------------------------------------

    def scheduled_tier_opens_once(self) -> float:
        """Wait for beat and the workers to open the tier and tell its watchers, then for two more ticks to
        have run, and check it opened once and each watcher heard once. Returns how late it opened (s)."""
        tier_id = self.seeded.scheduled_tier_id
        self.supervisor.wait_for(
            lambda: Tier.objects.filter(pk=tier_id, watchers_notified_at__isnull=False).exists(),
            what="the scheduled tier to open and its watchers to be told",
            timeout=60,
        )
        ticks_then = self.rollout_ticks_done()
        self.supervisor.wait_for(
            lambda: self.rollout_ticks_done() >= ticks_then + 2, what="two more rollout ticks", timeout=30
        )
        tier = Tier.objects.get(pk=tier_id)
        openings = AuditEvent.objects.filter(action="tier.opened", target_type="tier", target_id=tier_id)
        expect(openings.count() == 1, f"the tier has {openings.count()} tier.opened events, not 1")
        expect(openings.get().actor is None, "the opening has an actor: it was not beat's")
        expect(
            tier.opened_at >= tier.opens_at, f"opened at {tier.opened_at}, before its date {tier.opens_at}"
        )
        opened_subject = "Public of Smoke LM v1.0 is open"
        for address in (self.seeded.watcher.email, self.researcher.email):
            told = [m for m in messages_to(self.sink.messages, address) if subject(m) == opened_subject]
            expect(len(told) == 1, f"{address} was told {len(told)} times that the tier opened, not once")
        return (tier.opened_at - tier.opens_at).total_seconds()

    def rollout_ticks_done(self) -> int:
        return sum(
            len(ROLLOUT_TICK_DONE.findall(service.log()))
            for service in self.supervisor.services
            if service.name.startswith("worker")
        )
