"""The pages work under the strict Content Security Policy, in headless Chromium: Swagger UI at
/api/v1/docs renders the API, and the small behaviours of portal/static/portal/site.js run, with not
one violation reported by the browser. (The uploader, which PUTs to storage under connect-src, is
tests/e2e/test_upload_browser.py.)"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from access.models import Application
from access.services.applications import application_submit
from releases.models import Tier
from tests.factories import PASSWORD, TierFactory, UserFactory

pytestmark = pytest.mark.browser

# Runs in every document before its own scripts; Playwright injects it outside the page's policy.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.effectiveDirective} refused ${event.blockedURI || "inline code"}`);
});
"""


def watched_page(new_page) -> Page:
    page = new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    return page


def violations(page: Page) -> list[str]:
    return page.evaluate("window.cspViolations")


def test_swagger_ui_renders_the_api_under_the_policy(live_server, new_page):
    page = watched_page(new_page)

    response = page.goto(f"{live_server.url}/api/v1/docs")

    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Gatehouse API")
    expect(page.locator(".opblock").first).to_be_visible()
    page.locator(".opblock-summary").first.click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    assert violations(page) == []


def test_select_all_and_the_sign_out_button_work_under_the_policy(live_server, new_page, release, reviewer):
    tier = TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION)
    for number in range(3):
        applicant = UserFactory(email=f"applicant{number}@university.example")
        application_submit(
            user=applicant,
            tier=tier,
            affiliation="University of Examples",
            intended_use="Measure refusal rates on a public benchmark.",
            answers={},
            typed_name=applicant.full_name,
            seen_text_sha256=tier.license.current_version.text_sha256,
        )
    assert Application.objects.filter(status=Application.Status.PENDING).count() == 3
    page = watched_page(new_page)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", reviewer.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()

    page.goto(f"{live_server.url}/review/")
    boxes = page.locator("#queue input[name=application]")
    expect(boxes).to_have_count(3)
    page.locator("#select-all").check()
    for index in range(3):
        expect(boxes.nth(index)).to_be_checked()
    page.locator("#select-all").uncheck()
    for index in range(3):
        expect(boxes.nth(index)).not_to_be_checked()
    # The header's styles come from site.css: the sign-out form sits inline in the header.
    sign_out = page.get_by_role("button", name="Sign out")
    expect(sign_out).to_have_css("margin-top", "0px")
    assert violations(page) == []


def test_the_browser_reports_what_the_policy_refuses(live_server, new_page):
    """The control for the two tests above: inline code on a page is refused and recorded."""
    page = watched_page(new_page)
    page.goto(f"{live_server.url}/accounts/login/")

    page.evaluate("""() => {
      const script = document.createElement("script");
      script.textContent = "window.inlineRan = true";
      document.body.append(script);
    }""")

    expect(page.locator("body")).to_be_visible()
    page.wait_for_function("window.cspViolations.length > 0")
    assert page.evaluate("window.inlineRan") is None
    assert violations(page)[0].startswith("script-src")
