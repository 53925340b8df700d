"""The publisher workspace: my organizations, an organization's overview, its members, invitations.

Every organization page looks the organization up through access.policy.publishable_organizations,
so anyone who is not an owner or publisher of it gets 404, for pages and POSTs alike. Managing
members is for owners (access.policy.can_manage_members); a publisher sees the list only.
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from access import policy
from access.models import License
from releases.members import (
    MembershipError,
    invitation_accept,
    invitation_withdraw,
    membership_change_role,
    membership_invite,
    membership_remove,
)
from releases.models import Membership, Model, Organization, OrganizationInvitation, Release
from releases.publish.forms import InviteForm, RoleForm


def workspace_organization(request, org_slug: str) -> Organization:
    """The organization, if the requester may open its workspace; 404 for anyone else."""
    return get_object_or_404(policy.publishable_organizations(request.user), slug=org_slug)


def manages_members(request, organization: Organization) -> bool:
    """policy.can_manage_members, asked once per request."""
    answers = request.__dict__.setdefault("_manages_members", {})
    if organization.pk not in answers:
        answers[organization.pk] = policy.can_manage_members(request.user, organization)
    return answers[organization.pk]


def workspace_context(request, organization: Organization, **context) -> dict:
    return {
        "organization": organization,
        "can_manage_members": manages_members(request, organization),
        **context,
    }


def _verified_addresses(user) -> list[str]:
    # Invitations store addresses in lower case; allauth keeps them as typed.
    return [
        email.lower()
        for email in EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
    ]


@login_required
def workspace_home(request):
    organizations = list(policy.publishable_organizations(request.user).order_by("name"))
    verified = _verified_addresses(request.user)
    invitations = list(
        OrganizationInvitation.objects.filter(accepted_at__isnull=True, email__in=verified)
        .select_related("organization")
        .order_by("created_at")
    )
    if len(organizations) == 1 and not invitations:
        return redirect("publish-organization", org_slug=organizations[0].slug)
    return render(
        request,
        "releases/publish/home.html",
        {"organizations": organizations, "invitations": invitations},
    )


@login_required
def organization_overview(request, org_slug: str):
    organization = workspace_organization(request, org_slug)
    models = list(
        Model.objects.filter(organization=organization)
        .order_by("slug")
        .prefetch_related(Prefetch("releases", queryset=Release.objects.order_by("-created_at")))
    )
    licenses = list(
        License.objects.filter(organization=organization)
        .annotate(version_count=Count("versions"))
        .order_by("name")
    )
    member_counts = Membership.objects.filter(organization=organization).aggregate(
        members=Count("pk"), owners=Count("pk", filter=Q(role=Membership.Role.OWNER))
    )
    return render(
        request,
        "releases/publish/overview.html",
        workspace_context(
            request, organization, models=models, licenses=licenses, member_counts=member_counts
        ),
    )


# --- Members --------------------------------------------------------------------------------


@login_required
def members(request, org_slug: str):
    """The member list; owners invite by e-mail here (POST)."""
    organization = workspace_organization(request, org_slug)
    can_manage = manages_members(request, organization)
    form = InviteForm(request.POST or None)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("Only owners invite members.")
        if form.is_valid():
            try:
                invitation = membership_invite(
                    organization=organization,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    actor=request.user,
                )
            except MembershipError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, f"Invitation sent to {invitation.email}.")
                return redirect("publish-members", org_slug=organization.slug)
    memberships = list(
        Membership.objects.filter(organization=organization).select_related("user").order_by("user__email")
    )
    invitations = list(
        OrganizationInvitation.objects.filter(organization=organization, accepted_at__isnull=True)
        .select_related("invited_by")
        .order_by("created_at")
    )
    return render(
        request,
        "releases/publish/members.html",
        workspace_context(
            request,
            organization,
            memberships=memberships,
            invitations=invitations,
            form=form,
            roles=Membership.Role.choices,
        ),
        status=400 if form.errors else 200,
    )


def _owned_membership(request, org_slug: str, membership_id: int) -> Membership:
    organization = workspace_organization(request, org_slug)
    membership = get_object_or_404(
        Membership.objects.select_related("user", "organization"), pk=membership_id, organization=organization
    )
    if not policy.can_manage_members(request.user, organization):
        raise PermissionDenied("Only owners change members.")
    return membership


@login_required
@require_POST
def member_role(request, org_slug: str, membership_id: int):
    membership = _owned_membership(request, org_slug, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
    else:
        try:
            membership_change_role(membership=membership, role=form.cleaned_data["role"], actor=request.user)
        except MembershipError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request, f"{membership.user.email} is now {Membership.Role(form.cleaned_data['role']).label}."
            )
    return _after_member_change(request, membership.organization)


@login_required
@require_POST
def member_remove(request, org_slug: str, membership_id: int):
    membership = _owned_membership(request, org_slug, membership_id)
    try:
        membership_remove(membership=membership, actor=request.user)
    except MembershipError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{membership.user.email} is no longer a member.")
    return _after_member_change(request, membership.organization)


def _after_member_change(request, organization: Organization):
    # Owners who demoted or removed themselves may no longer see the page.
    if policy.publishable_organizations(request.user).filter(pk=organization.pk).exists():
        return redirect("publish-members", org_slug=organization.slug)
    return redirect("publish-home")


@login_required
@require_POST
def invitation_cancel(request, org_slug: str, invitation_id: int):
    organization = workspace_organization(request, org_slug)
    invitation = get_object_or_404(
        OrganizationInvitation.objects.select_related("organization"),
        pk=invitation_id,
        organization=organization,
        accepted_at__isnull=True,
    )
    if not policy.can_manage_members(request.user, organization):
        raise PermissionDenied("Only owners withdraw invitations.")
    try:
        invitation_withdraw(invitation=invitation, actor=request.user)
    except MembershipError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The invitation to {invitation.email} was withdrawn.")
    return redirect("publish-members", org_slug=organization.slug)


# --- Taking an invitation -------------------------------------------------------------------


@login_required
def invitation_detail(request, invitation_id: int):
    """The invitee's page: the organization and role offered, and a button to accept.

    Only an account that owns the invited address, verified, can see it; anyone else gets 404.
    """
    verified = _verified_addresses(request.user)
    invitation = (
        OrganizationInvitation.objects.select_related("organization", "invited_by")
        .filter(pk=invitation_id, email__in=verified)
        .first()
    )
    if invitation is None:
        raise Http404("No such invitation.")
    if invitation.accepted_at is not None:
        if Membership.objects.filter(organization=invitation.organization, user=request.user).exists():
            messages.info(request, f"You are a member of {invitation.organization.name}.")
            return _member_landing(request, invitation.organization)
        raise Http404("No such invitation.")
    error = None
    if request.method == "POST":
        try:
            membership = invitation_accept(invitation=invitation, user=request.user)
        except MembershipError as refused:
            error = refused.message
        else:
            messages.success(
                request,
                f"You joined {invitation.organization.name} as {membership.get_role_display().lower()}.",
            )
            return _member_landing(request, invitation.organization)
    return render(
        request,
        "releases/publish/invitation.html",
        {"invitation": invitation, "role": Membership.Role(invitation.role).label, "error": error},
        status=400 if error else 200,
    )


def _member_landing(request, organization: Organization):
    """Where a new member's work is: the workspace, the review queue, or (auditors) the catalogue."""
    if policy.can_publish(request.user, organization):
        return redirect("publish-organization", org_slug=organization.slug)
    if policy.can_review(request.user, organization):
        return redirect("review-queue", org_slug=organization.slug)
    return redirect("catalogue")
