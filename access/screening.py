"""Automatic screening of a submitted application against its tier's rules.

A tier's ``screening_rules`` (all keys optional)::

    {"allowed_email_domains": ["example.edu"],   # the applicant's address must be at one (or a subdomain)
     "denied_email_domains": ["mailinator.com"],  # ... and at none of these
     "denied_countries": ["KP"],                  # ISO 3166-1 alpha-2, read from the answer of ...
     "country_question": "country",               # ... this country question
     "require_orcid": true,                       # an ORCID iD with the right check digit, from ...
     "orcid_question": "orcid",                   # ... this ORCID (or short text) question
     "soft_rules": ["email_domain_allow_list"]}   # rules that only flag; every other rule is hard

A failed hard rule lets a tier with ``auto_reject_on_hard_rule`` reject at once, with the rule's
message as the reason; a tier with ``auto_approve_on_screening`` approves when every rule passed;
otherwise, and whenever a soft rule failed, the application waits for people. The report is kept
on the application (``screening_report``) for the reviewers, with ``screened_at``.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.utils import timezone

from access.audit import audit_record
from access.countries import COUNTRY_NAMES
from access.errors import InvalidInput
from access.models import Application
from access.questions import normalize_orcid, question_type
from access.services.applications import application_decide_automatically

EMAIL_ALLOW_LIST = "email_domain_allow_list"
EMAIL_DENY_LIST = "email_domain_deny_list"
COUNTRY_DENY_LIST = "country_deny_list"
ORCID_RULE = "orcid"
RULE_LABELS = {
    EMAIL_ALLOW_LIST: "E-mail domain on the allow list",
    EMAIL_DENY_LIST: "E-mail domain not on the deny list",
    COUNTRY_DENY_LIST: "Declared country not on the deny list",
    ORCID_RULE: "ORCID iD well-formed, with the right check digit",
}
RULE_KEYS = frozenset(
    {
        "allowed_email_domains",
        "denied_email_domains",
        "denied_countries",
        "country_question",
        "require_orcid",
        "orcid_question",
        "soft_rules",
    }
)
MAX_DOMAINS = 200
MAX_DOMAIN_LENGTH = 253
# Domains named in an automatic rejection's reason; the rest are counted.
DOMAINS_IN_MESSAGE = 10
_DOMAIN = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


# --- The rules, as publishers set them --------------------------------------------------------


def validate_screening_rules(rules: Any, questions: list[dict]) -> dict:
    """The rules, normalised (lower-case domains, upper-case country codes, no empty keys);
    InvalidInput when they are malformed or name a question the form does not ask."""
    if not isinstance(rules, dict):
        raise InvalidInput("Screening rules must be an object.")
    unknown = set(rules) - RULE_KEYS
    if unknown:
        raise InvalidInput(f"Unknown screening rules: {', '.join(sorted(unknown))}.")
    normalized: dict[str, Any] = {}
    allowed = _domains(rules.get("allowed_email_domains", []), "allowed")
    denied = _domains(rules.get("denied_email_domains", []), "denied")
    both = sorted(set(allowed) & set(denied))
    if both:
        raise InvalidInput(f"{both[0]} is both allowed and denied.")
    if allowed:
        normalized["allowed_email_domains"] = allowed
    if denied:
        normalized["denied_email_domains"] = denied
    countries = rules.get("denied_countries", [])
    if not isinstance(countries, list) or not all(isinstance(code, str) for code in countries):
        raise InvalidInput("Denied countries must be a list of two-letter codes.")
    countries = list(dict.fromkeys(code.strip().upper() for code in countries))
    not_countries = [code for code in countries if code not in COUNTRY_NAMES]
    if not_countries:
        raise InvalidInput(f"{not_countries[0]!r} is not an ISO 3166-1 country code.")
    by_name = {question["name"]: question for question in questions}
    if countries:
        name = rules.get("country_question")
        if name not in by_name or question_type(by_name[name]) != "country":
            raise InvalidInput("Denying countries needs the name of a country question of this form.")
        normalized["denied_countries"] = countries
        normalized["country_question"] = name
    require_orcid = rules.get("require_orcid", False)
    if not isinstance(require_orcid, bool):
        raise InvalidInput("require_orcid must be true or false.")
    if require_orcid:
        name = rules.get("orcid_question")
        if name not in by_name or question_type(by_name[name]) not in ("orcid", "short_text"):
            raise InvalidInput("Requiring an ORCID iD needs the name of an ORCID iD question of this form.")
        normalized["require_orcid"] = True
        normalized["orcid_question"] = name
    soft = rules.get("soft_rules", [])
    if not isinstance(soft, list) or not set(soft) <= set(RULE_LABELS):
        raise InvalidInput(f"Soft rules are a list of: {', '.join(RULE_LABELS)}.")
    if soft:
        normalized["soft_rules"] = [rule for rule in RULE_LABELS if rule in soft]
    return normalized


def _domains(value: Any, which: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(domain, str) for domain in value):
        raise InvalidInput(f"The {which} e-mail domains must be a list.")
    domains = list(dict.fromkeys(domain.strip().lower().lstrip("@").rstrip(".") for domain in value))
    domains = [domain for domain in domains if domain]
    if len(domains) > MAX_DOMAINS:
        raise InvalidInput(f"At most {MAX_DOMAINS} {which} e-mail domains.")
    for domain in domains:
        if len(domain) > MAX_DOMAIN_LENGTH or not _DOMAIN.match(domain):
            raise InvalidInput(f"{domain!r} is not a domain name (like example.edu).")
    return domains


def has_rules(rules: dict) -> bool:
    return bool(
        rules.get("allowed_email_domains")
        or rules.get("denied_email_domains")
        or rules.get("denied_countries")
        or rules.get("require_orcid")
    )


# --- Running them -----------------------------------------------------------------------------


def screening_report(application: Application) -> dict:
    """What the tier's rules say about the application. Reads, writes nothing."""
    rules = application.tier.screening_rules or {}
    soft = set(rules.get("soft_rules", []))
    domain = application.user.email.rpartition("@")[2].lower().rstrip(".")
    results = []

    def record(rule: str, passed: bool, message: str) -> None:
        results.append(
            {
                "rule": rule,
                "label": RULE_LABELS[rule],
                "passed": passed,
                "hard": rule not in soft,
                "message": message,
            }
        )

    allowed = rules.get("allowed_email_domains") or []
    if allowed:
        match = _matching_domain(domain, allowed)
        if match:
            record(EMAIL_ALLOW_LIST, True, f"The applicant's address is at {domain}, allowed as {match}.")
        else:
            record(
                EMAIL_ALLOW_LIST,
                False,
                f"This tier takes applications from addresses at {_domain_list(allowed)}; "
                f"the applicant's address is at {domain}.",
            )
    denied = rules.get("denied_email_domains") or []
    if denied:
        match = _matching_domain(domain, denied)
        if match:
            record(EMAIL_DENY_LIST, False, f"This tier takes no applications from addresses at {match}.")
        else:
            record(EMAIL_DENY_LIST, True, f"The applicant's address is at {domain}, not a denied domain.")
    countries = rules.get("denied_countries") or []
    if countries:
        record(
            COUNTRY_DENY_LIST,
            *_country_result(application.answers.get(rules.get("country_question")), countries),
        )
    if rules.get("require_orcid"):
        record(ORCID_RULE, *_orcid_result(application.answers.get(rules.get("orcid_question"))))
    hard_failures = [result["message"] for result in results if not result["passed"] and result["hard"]]
    return {
        "revision": application.revision,
        "results": results,
        "passed": all(result["passed"] for result in results),
        "hard_failed": bool(hard_failures),
    }


def _matching_domain(domain: str, listed: list[str]) -> str | None:
    """The listed domain that ``domain`` is, or is a subdomain of."""
    for entry in listed:
        if domain == entry or domain.endswith("." + entry):
            return entry
    return None


def _domain_list(domains: list[str]) -> str:
    shown = ", ".join(domains[:DOMAINS_IN_MESSAGE])
    rest = len(domains) - DOMAINS_IN_MESSAGE
    return f"{shown} and {rest} more" if rest > 0 else shown


def _country_result(answer: Any, denied: list[str]) -> tuple[bool, str]:
    if not isinstance(answer, str) or answer not in COUNTRY_NAMES:
        return False, "No country was declared; this tier needs one to check export restrictions."
    name = f"{COUNTRY_NAMES[answer]} ({answer})"
    if answer in denied:
        return False, f"Export restrictions: this tier takes no applications declaring {name}."
    return True, f"The declared country, {name}, is not restricted."


def _orcid_result(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or not answer.strip():
        return False, "No ORCID iD was given; this tier requires one."
    orcid = normalize_orcid(answer)
    if orcid is None:
        return (
            False,
            f"The ORCID iD {answer.strip()!r} is not of the form 0000-0000-0000-000X "
            "with a right check digit.",
        )
    return True, f"The ORCID iD {orcid} is well-formed and its check digit is right."


def application_screen(*, application_id: int) -> bool:
    """Screen the application's current revision once, and decide it where the tier lets
    screening decide. Returns whether this call screened it: a second call for the same revision
    (a redelivered task) changes nothing, and an application gone or withdrawn is left alone.

    The automatic decisions go through the same paths as a reviewer's, without a reviewer:
    no Review row, the audit events' actor is None.
    """
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("tier", "user")
            .filter(pk=application_id)
            .first()
        )
        if application is None:
            return False
        if (
            application.screened_at is not None
            and application.screening_report.get("revision") == application.revision
        ):
            return False
        report = screening_report(application)
        application.screening_report = report
        application.screened_at = timezone.now()
        application.save(update_fields=["screening_report", "screened_at"])
        failed = [result for result in report["results"] if not result["passed"]]
        audit_record(
            action="application.screened",
            target=application,
            payload={
                "revision": application.revision,
                "passed": report["passed"],
                "failed_rules": [result["rule"] for result in failed],
            },
        )
        if application.status != Application.Status.PENDING:
            return True
        tier = application.tier
        if tier.auto_reject_on_hard_rule and report["hard_failed"]:
            reason = " ".join(result["message"] for result in failed if result["hard"])
            application_decide_automatically(application=application, approve=False, reason=reason)
        elif tier.auto_approve_on_screening and report["passed"] and report["results"]:
            application_decide_automatically(
                application=application,
                approve=True,
                reason="Approved automatically: every screening rule passed.",
            )
    return True
