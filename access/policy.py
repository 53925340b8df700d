"""Who may do what. Every view, API endpoint, URL signer and service asks here.

The functions answer questions; they never change anything. A refusal carries a
stable ``code`` (also used by JSON clients), a sentence for people, and where
possible the page on which the user can do something about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from allauth.account.models import EmailAddress
from django.urls import reverse
from django.utils import timezone

from access.models import Application, Grant, Invitation, Review
from releases.models import Membership, Organization, Tier

REVIEW_ROLES = (Membership.Role.OWNER, Membership.Role.REVIEWER)
PUBLISH_ROLES = (Membership.Role.OWNER, Membership.Role.PUBLISHER)


# --- Organizations --------------------------------------------------------------------------


def roles_in(user, organization: Organization) -> set[str]:
    if not user.is_authenticated:
        return set()
    return set(Membership.objects.filter(user=user, organization=organization).values_list("role", flat=True))


def can_review(user, organization: Organization) -> bool:
    """Owners and reviewers of the organization decide its applications."""
    return bool(roles_in(user, organization) & set(REVIEW_ROLES))


def can_publish(user, organization: Organization) -> bool:
    """Owners and publishers manage the organization's models, releases, tiers and licenses."""
    return bool(roles_in(user, organization) & set(PUBLISH_ROLES))


def can_manage_members(user, organization: Organization) -> bool:
    """Only owners invite, re-role and remove members."""
    return Membership.Role.OWNER in roles_in(user, organization)


def publishable_organizations(user):
    """Organizations whose publisher workspace ``user`` may open; any other answers 404."""
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(memberships__user=user, memberships__role__in=PUBLISH_ROLES).distinct()


def reviewable_organizations(user):
    return Organization.objects.filter(memberships__user=user, memberships__role__in=REVIEW_ROLES).distinct()


def can_decide(user, application: Application) -> bool:
    """A reviewer of the tier's organization, who is not the applicant."""
    if application.user_id == user.pk:
        return False
    if appeal_conflict(user, application):
        return False
    return can_review(user, application.tier.release.model.organization)


def appeal_excluded_reviewer_ids(application: Application) -> list[int]:
    """The reviewers who rejected ``application``: none of them decides its appeal."""
    return list(
        Review.objects.filter(application=application, decision=Review.Decision.REJECT).values_list(
            "reviewer_id", flat=True
        )
    )


def appeal_conflict(user, application: Application) -> bool:
    """Whether ``user`` rejected the application whose appeal is pending: an appeal goes to
    someone else."""
    return application.status == Application.Status.APPEALED and user.pk in appeal_excluded_reviewer_ids(
        application
    )


def reapply_date(user, tier: Tier, *, now: datetime | None = None) -> datetime | None:
    """When ``user`` may apply to ``tier`` again after a rejection, while the tier's
    cool-down (``reapply_cooldown_days`` from the latest rejection) runs; None otherwise."""
    if not tier.reapply_cooldown_days:
        return None
    cooldown = timedelta(days=tier.reapply_cooldown_days)
    decided_at = (
        Application.objects.filter(
            user=user,
            tier=tier,
            status=Application.Status.REJECTED,
            decided_at__gt=(now or timezone.now()) - cooldown,
        )
        .order_by("-decided_at")
        .values_list("decided_at", flat=True)
        .first()
    )
    return decided_at + cooldown if decided_at else None


# --- Accounts -------------------------------------------------------------------------------


_EMAIL_VERIFIED_MEMO = "_gatehouse_email_verified"


def has_verified_email(user) -> bool:
    """Applying and downloading need an account whose e-mail address is verified.

    Token authentication reads the answer with the token and remembers it on the user
    object for the rest of the request (``remember_email_verified``), saving a query on
    every download URL a script asks for.
    """
    if not user.is_authenticated:
        return False
    memo = getattr(user, _EMAIL_VERIFIED_MEMO, None)
    if memo is not None:
        return memo
    return EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()


def remember_email_verified(user, verified: bool) -> None:
    setattr(user, _EMAIL_VERIFIED_MEMO, bool(verified))


# --- A user's standing on a tier ------------------------------------------------------------


@dataclass(frozen=True)
class TierStanding:
    """Where a user stands on one tier, for the model page and for JSON clients."""

    code: str
    label: str
    detail: str = ""
    application: Application | None = None
    grant: Grant | None = None
    date: datetime | None = None

    @property
    def can_download(self) -> bool:
        return self.code in ("open", "approved")


def tier_standing(
    user,
    tier: Tier,
    *,
    applications: list[Application] | None = None,
    grants: list[Grant] | None = None,
    invited: bool | None = None,
    now: datetime | None = None,
) -> TierStanding:
    """The user's status on ``tier``. Callers listing many tiers pass the user's
    applications and grants for them, prefetched, to keep the query count flat."""
    now = now or timezone.now()
    if not tier.is_open:
        return TierStanding(
            "not_open", "Not open yet", f"Opens on {tier.opens_at:%Y-%m-%d %H:%M} UTC", date=tier.opens_at
        )
    if tier.gate == Tier.Gate.OPEN:
        return TierStanding("open", "Open to everyone")
    if not user.is_authenticated:
        return TierStanding("not_requested", "Sign in to request access")
    if grants is None:
        grants = list(Grant.objects.with_license_state().filter(user=user, tier=tier).order_by("-granted_at"))
    if applications is None:
        applications = list(Application.objects.filter(user=user, tier=tier).order_by("-submitted_at"))
    grant = _latest(grants, "granted_at")
    application = _latest(applications, "submitted_at")
    if grant is not None and _renewal_supersedes(application, grant, now):
        # A new application after an expired or revoked grant is where the user stands now.
        grant = None
    if tier.gate == Tier.Gate.APPLICATION and _invitation_may_apply(application, grant, now):
        # A reviewer's direct grant to someone without a binding license acceptance is an
        # invitation (access/services/direct_grants.py); it wins over a closed application.
        if invited is None:
            invited = is_invited(user, tier)
        if invited:
            return TierStanding("invited", "Invited: accept the license to get access")
    if grant is not None:
        if grant.status == Grant.Status.REVOKED:
            return TierStanding("revoked", "Revoked", grant.revoke_reason, grant=grant, date=grant.revoked_at)
        if grant.status == Grant.Status.EXPIRED or (grant.expires_at and grant.expires_at <= now):
            return TierStanding(
                "expired", "Expired", "Your access has expired.", grant=grant, date=grant.expires_at
            )
        if license_outdated(grant):
            return TierStanding(
                "license_changed",
                "License changed",
                "The license changed; accept the new version to download again.",
                grant=grant,
                date=grant.expires_at,
            )
        until = f"until {grant.expires_at:%Y-%m-%d}" if grant.expires_at else "with no end date"
        return TierStanding("approved", "Approved", f"Access {until}", grant=grant, date=grant.expires_at)
    if application is not None:
        if application.status == Application.Status.PENDING:
            detail = (
                f"Submitted on {application.submitted_at:%Y-%m-%d}; "
                f"decision expected by {application.decision_due_at:%Y-%m-%d}"
            )
            return TierStanding(
                "pending", "Pending review", detail, application=application, date=application.decision_due_at
            )
        if application.status == Application.Status.RETURNED:
            return TierStanding(
                "returned",
                "Returned for revision",
                f"The reviewer asks: {application.decision_reason}",
                application=application,
            )
        if application.status == Application.Status.APPEALED:
            detail = (
                f"Appealed on {application.appealed_at:%Y-%m-%d}; "
                f"decision expected by {application.decision_due_at:%Y-%m-%d}"
            )
            return TierStanding(
                "appealed",
                "Appeal pending",
                detail,
                application=application,
                date=application.decision_due_at,
            )
        if application.status == Application.Status.REJECTED:
            if tier.reapply_cooldown_days and application.decided_at:
                reapply_at = application.decided_at + timedelta(days=tier.reapply_cooldown_days)
                if reapply_at > now:
                    detail = (
                        f"{application.decision_reason} You may apply again on {reapply_at:%Y-%m-%d}.".strip()
                    )
                    return TierStanding(
                        "cooldown", "Rejected", detail, application=application, date=reapply_at
                    )
            return TierStanding("rejected", "Rejected", application.decision_reason, application=application)
        if application.status == Application.Status.EXPIRED:
            detail = (
                f"Your application expired on {application.decided_at:%Y-%m-%d} without activity; "
                "you may apply again."
            )
            return TierStanding(
                "application_expired", "Expired without a decision", detail, application=application
            )
    if tier.gate == Tier.Gate.INVITATION:
        if invited is None:
            invited = is_invited(user, tier)
        if not invited:
            return TierStanding("invitation_only", "By invitation only")
        return TierStanding("invited", "Invited: accept the license to get access")
    return TierStanding("not_requested", "Not requested")


def _latest(rows, field):
    return max(rows, key=lambda row: getattr(row, field), default=None)


def _renewal_supersedes(application: Application | None, grant: Grant, now: datetime) -> bool:
    """Whether ``application`` is a request (open, rejected or expired) made after ``grant`` ended."""
    if application is None or application.status not in (
        Application.Status.PENDING,
        Application.Status.RETURNED,
        Application.Status.APPEALED,
        Application.Status.REJECTED,
        Application.Status.EXPIRED,
    ):
        return False
    if grant.status == Grant.Status.REVOKED and application.renews_id == grant.pk:
        # A renewal of a revoked grant never stands in for the revocation.
        return False
    grant_is_live = grant.status == Grant.Status.ACTIVE and (
        grant.expires_at is None or grant.expires_at > now
    )
    return not grant_is_live and application.submitted_at > grant.granted_at


def _invitation_may_apply(application: Application | None, grant: Grant | None, now: datetime) -> bool:
    """Whether an invitation to an application tier may be what the user should act on: no
    open application, and no grant that is live or revoked (a revocation stands)."""
    if application is not None and application.status in Application.OPEN_STATUSES:
        return False
    if grant is None:
        return True
    if grant.status == Grant.Status.REVOKED:
        return False
    return grant.status == Grant.Status.EXPIRED or (grant.expires_at is not None and grant.expires_at <= now)


def license_outdated(grant: Grant) -> bool:
    """Whether the grant's license acceptance predates a version published with re-acceptance
    required; its holder must accept the current version before downloading again. Free for
    grants read with ``Grant.objects.with_license_state()``, one query otherwise."""
    outdated = getattr(grant, "license_outdated", None)
    if outdated is None:
        outdated = Grant.objects.with_license_state().filter(pk=grant.pk, license_outdated=True).exists()
    return outdated


LICENSE_CHANGED_MESSAGE = "The license changed; accept the new version here"


def reaccept_url(tier: Tier) -> str:
    return reverse("tier-reaccept", kwargs={"tier_id": tier.pk})


def is_invited(user, tier: Tier) -> bool:
    return Invitation.objects.filter(tier=tier, email__iexact=user.email, accepted_at__isnull=True).exists()


# --- Applying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    action_url: str = ""


def application_refusal(user, tier: Tier) -> Refusal | None:
    """Why ``user`` may not apply to ``tier`` now, or None if they may."""
    if not has_verified_email(user):
        return Refusal(
            "email_unverified", "Verify your e-mail address before applying.", reverse("account_email")
        )
    if not tier.is_open:
        return Refusal(
            "not_open", f"This tier opens on {tier.opens_at:%Y-%m-%d %H:%M} UTC; applications open then."
        )
    if tier.closes_at is not None and tier.closes_at <= timezone.now():
        return Refusal("closed", f"This tier closed to new applications on {tier.closes_at:%Y-%m-%d} UTC.")
    if tier.gate != Tier.Gate.APPLICATION:
        return Refusal("no_application", "This tier does not take applications.")
    if tier.release.status != tier.release.Status.PUBLISHED:
        return Refusal("not_published", "This release is not published.")
    if Application.objects.filter(user=user, tier=tier, status__in=Application.OPEN_STATUSES).exists():
        return Refusal("already_pending", "You already have an application open for this tier.")
    latest_grant = Grant.objects.filter(user=user, tier=tier).order_by("-granted_at").first()
    if latest_grant is not None and latest_grant.status == Grant.Status.REVOKED:
        return Refusal("revoked", "Your access to this tier was revoked; contact the publisher.")
    if (
        latest_grant is not None
        and latest_grant.status == Grant.Status.ACTIVE
        and (latest_grant.expires_at is None or latest_grant.expires_at > timezone.now())
    ):
        return Refusal("already_granted", "You already have access to this tier.")
    reapply_at = reapply_date(user, tier)
    if reapply_at is not None:
        return Refusal(
            "cooldown",
            f"Your last application was rejected; you may apply again from {reapply_at:%Y-%m-%d %H:%M} UTC.",
        )
    return None


# A grant may be renewed from this many days before it expires (and any time after).
RENEWAL_WINDOW_DAYS = 30


def renewal_refusal(user, grant: Grant, *, now: datetime | None = None) -> Refusal | None:
    """Why ``user`` may not ask to renew ``grant`` now, or None if they may.

    Renewal opens RENEWAL_WINDOW_DAYS before the grant expires, so that renewing early
    cannot stack up years of access, and stays open after expiry while the grant is the
    user's latest on the tier. ``grant`` must be the user's own (callers scope the lookup).
    """
    now = now or timezone.now()
    tier = grant.tier
    tier_url = reverse("tier-detail", kwargs={"tier_id": tier.pk})
    if not has_verified_email(user):
        return Refusal("email_unverified", "Verify your e-mail address first.", reverse("account_email"))
    if tier.renewal == Tier.Renewal.NONE:
        return Refusal(
            "renewal_unavailable",
            "This tier does not renew access; apply again once it has expired.",
            tier_url,
        )
    if grant.status == Grant.Status.REVOKED:
        return Refusal("revoked", "Your access to this tier was revoked; contact the publisher.")
    if grant.expires_at is None:
        return Refusal("no_expiry", "Your access has no end date; there is nothing to renew.")
    if tier.closes_at is not None and tier.closes_at <= now:
        return Refusal("closed", f"This tier closed on {tier.closes_at:%Y-%m-%d} UTC; access is not renewed.")
    if Grant.objects.filter(user=user, tier=tier, granted_at__gt=grant.granted_at).exists():
        return Refusal("superseded", "You have newer access to this tier.", tier_url)
    if Application.objects.filter(user=user, tier=tier, status__in=Application.OPEN_STATUSES).exists():
        return Refusal("already_pending", "You already have a request open for this tier.", tier_url)
    if license_outdated(grant):
        if grant.expires_at > now:
            return Refusal("license_changed", LICENSE_CHANGED_MESSAGE, reaccept_url(tier))
        return Refusal(
            "license_changed", "The license changed; apply again to accept the new version.", tier_url
        )
    opens_at = grant.expires_at - timedelta(days=RENEWAL_WINDOW_DAYS)
    if opens_at > now:
        return Refusal("too_early", f"You can ask for a renewal from {opens_at:%Y-%m-%d} on.")
    return None


def license_acceptance_refusal(user, tier: Tier) -> Refusal | None:
    """Why ``user`` may not get access to a click-through or invitation tier by accepting its license."""
    if not has_verified_email(user):
        return Refusal("email_unverified", "Verify your e-mail address first.", reverse("account_email"))
    if not tier.is_open:
        return Refusal("not_open", f"This tier opens on {tier.opens_at:%Y-%m-%d %H:%M} UTC.")
    if tier.closes_at is not None and tier.closes_at <= timezone.now():
        return Refusal("closed", f"This tier closed on {tier.closes_at:%Y-%m-%d %H:%M} UTC to new requests.")
    invited = tier.gate in (Tier.Gate.INVITATION, Tier.Gate.APPLICATION) and is_invited(user, tier)
    if tier.gate == Tier.Gate.INVITATION and not invited:
        return Refusal("not_invited", "This tier is by invitation only.")
    # On an application tier, a reviewer's invitation (a direct grant) stands in for the application.
    if tier.gate not in (Tier.Gate.CLICK_THROUGH, Tier.Gate.INVITATION) and not invited:
        return Refusal(
            "no_click_through", "Access to this tier is not granted by accepting its license alone."
        )
    latest_grant = Grant.objects.filter(user=user, tier=tier).order_by("-granted_at").first()
    # Without this, a revoked user of a click-through tier would simply accept again.
    if latest_grant is not None and latest_grant.status == Grant.Status.REVOKED:
        return Refusal("revoked", "Your access to this tier was revoked; contact the publisher.")
    if Grant.objects.active().filter(user=user, tier=tier).exists():
        return Refusal("already_granted", "You already have access to this tier.")
    return None


# --- Deciding applications ------------------------------------------------------------------
#
# The assignment rule. An application assigned to a reviewer (round-robin on submission, or
# claimed from the queue) is theirs to decide: another reviewer may act on it only to add a
# further approval once the assignee has approved the current revision (the second pair of eyes
# of a tier that needs several approvals). Owners may act on any application, and may take one
# over by claiming it. An assignee who is no longer an owner or reviewer of the organization
# holds nothing; an unassigned application is open to every reviewer.

DECISIONS = ("approve", "reject", "return")


@dataclass(frozen=True)
class ReviewState:
    """What the decision rules need besides the application row; read for many applications at
    once by ``access.selectors.review_states``."""

    # Reviewers who approved the current revision since the last rejection or return.
    approver_ids: frozenset[int] = frozenset()
    # Reviewers who rejected the application at any time: none of them decides its appeal.
    rejecter_ids: frozenset[int] = frozenset()
    # Whether the assignee is (still) an owner or reviewer of the organization.
    assignee_reviews: bool = False


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].strip().lower()


def conflict_of_interest(reviewer, applicant) -> bool:
    """Whether the reviewer's e-mail domain is the applicant's: a warning, not a refusal."""
    return email_domain(reviewer.email) == email_domain(applicant.email)


def assignment_refusal(
    user, application: Application, *, roles: set[str], state: ReviewState
) -> Refusal | None:
    """Why ``user`` may not act on ``application`` because it is assigned to someone else."""
    if application.assigned_to_id is None or application.assigned_to_id == user.pk:
        return None
    if Membership.Role.OWNER in roles or not state.assignee_reviews:
        return None
    if application.assigned_to_id in state.approver_ids:
        return None
    assignee = application.assigned_to
    name = (assignee.full_name or assignee.email) if assignee is not None else "another reviewer"
    return Refusal(
        "assigned_to_other",
        f"Application #{application.pk} is assigned to {name}: only they or an owner may decide it"
        " (once they have approved it, other reviewers may add their approval).",
    )


def decision_refusal(
    user, application: Application, decision: str, *, roles: set[str], state: ReviewState
) -> Refusal | None:
    """Why ``user`` may not ``decision`` (approve, reject or return) ``application`` now, or None.

    ``roles`` are the user's roles in the application's organization. The code is
    ``invalid_transition`` or ``already_approved`` when the application's state is the reason.
    """
    if not roles & set(REVIEW_ROLES):
        return Refusal("not_allowed", "Only the organization's owners and reviewers may decide applications.")
    if application.user_id == user.pk:
        return Refusal("own_application", "You cannot decide your own application.")
    if application.status not in Application.AWAITING_DECISION:
        return Refusal(
            "invalid_transition", f"This application is already {application.get_status_display().lower()}."
        )
    if application.status == Application.Status.APPEALED and user.pk in state.rejecter_ids:
        return Refusal(
            "appeal_conflict", "You rejected this application; another reviewer decides its appeal."
        )
    refusal = assignment_refusal(user, application, roles=roles, state=state)
    if refusal is not None:
        return refusal
    if decision == "approve" and user.pk in state.approver_ids:
        return Refusal(
            "already_approved", "You have already approved this application; it needs another reviewer."
        )
    return None


def claim_refusal(user, application: Application, *, roles: set[str], state: ReviewState) -> Refusal | None:
    """Why ``user`` may not make themselves the assignee of ``application``, or None."""
    if not roles & set(REVIEW_ROLES):
        return Refusal("not_allowed", "Only the organization's owners and reviewers may claim applications.")
    if application.user_id == user.pk:
        return Refusal("own_application", "You cannot review your own application.")
    if application.status not in Application.OPEN_STATUSES:
        return Refusal(
            "invalid_transition", f"This application is already {application.get_status_display().lower()}."
        )
    if application.status == Application.Status.APPEALED and user.pk in state.rejecter_ids:
        return Refusal(
            "appeal_conflict", "You rejected this application; another reviewer decides its appeal."
        )
    if application.assigned_to_id == user.pk:
        return Refusal("already_assigned", "This application is already assigned to you.")
    if (
        application.assigned_to_id is not None
        and state.assignee_reviews
        and Membership.Role.OWNER not in roles
    ):
        assignee = application.assigned_to
        name = (assignee.full_name or assignee.email) if assignee is not None else "another reviewer"
        return Refusal(
            "assigned_to_other",
            f"Application #{application.pk} is assigned to {name}; only an owner may take it over.",
        )
    return None
