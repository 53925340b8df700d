"""The Django admin for site staff: every model has pages that load, evidence is read-only."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from access.audit import audit_record
from access.models import (
    ApplicationRevision,
    AuditChainHead,
    AuditEvent,
    DownloadEvent,
    Grant,
    Invitation,
    LicenseAcceptance,
    LicenseVersion,
    Notification,
    RejectionReason,
    SentEmail,
    User,
)
from access.services.applications import application_approve
from access.services.tokens import token_create
from releases.models import OrganizationInvitation, Watch
from tests.factories import ApplicationFactory

GATEHOUSE_MODELS = [
    model for model in admin.site._registry if model._meta.app_label in ("access", "releases")
]
READ_ONLY = {ApplicationRevision, AuditChainHead, AuditEvent, DownloadEvent, LicenseAcceptance, SentEmail}


@pytest.fixture
def staff_client(client, db):
    user = User.objects.create_superuser(
        email="root@gatehouse.example", password="x" * 20, full_name="Site Staff"
    )
    client.force_login(user)
    return client


@pytest.fixture
def one_of_everything(reviewer, researcher, application_tier):
    application = ApplicationFactory(user=researcher, tier=application_tier)
    application_approve(application_id=application.pk, reviewer=reviewer, reason="Fine.")
    grant = Grant.objects.get(application=application)
    artifact = application_tier.artifacts.get()
    DownloadEvent.objects.create(
        user=researcher, artifact=artifact, tier=application_tier, grant=grant, url_expires_at=timezone.now()
    )
    Invitation.objects.create(tier=application_tier, email="eve@example.org", invited_by=reviewer)
    token_create(user=researcher, name="cli")
    Watch.objects.create(user=researcher, tier=application_tier)
    ApplicationRevision.objects.create(
        application=application,
        number=1,
        affiliation="Uni",
        intended_use="Research",
        submitted_at=timezone.now(),
    )
    RejectionReason.objects.create(
        organization=application_tier.release.model.organization, text="Incomplete"
    )
    Notification.objects.create(user=reviewer, kind="test", message="A notification")
    OrganizationInvitation.objects.create(
        organization=application_tier.release.model.organization,
        email="new@acme.example",
        role="reviewer",
        invited_by=reviewer,
    )
    SentEmail.objects.create(key="application:1:approved", to=researcher.email, subject="Approved")
    with transaction.atomic():
        audit_record(action="test.admin", target=grant, actor=reviewer)


def test_every_model_of_both_apps_is_in_the_admin():
    models = set(apps.get_app_config("access").get_models()) | set(
        apps.get_app_config("releases").get_models()
    )
    assert models == set(GATEHOUSE_MODELS)


@pytest.mark.parametrize("model_class", GATEHOUSE_MODELS, ids=lambda model_class: model_class.__name__)
def test_the_list_search_and_change_pages_load(staff_client, one_of_everything, model_class):
    info = model_class._meta.app_label, model_class._meta.model_name
    listing = staff_client.get(reverse("admin:{}_{}_changelist".format(*info)), {"q": "a"})
    assert listing.status_code == 200
    row = model_class.objects.first()
    assert row is not None
    change = staff_client.get(reverse("admin:{}_{}_change".format(*info), args=[row.pk]))
    assert change.status_code == 200


@pytest.mark.parametrize("model_class", sorted(READ_ONLY, key=lambda m: m.__name__), ids=lambda m: m.__name__)
def test_evidence_cannot_be_added_changed_or_deleted(staff_client, one_of_everything, model_class, rf):
    model_admin = admin.site._registry[model_class]
    request = rf.get("/")
    request.user = User.objects.get(email="root@gatehouse.example")
    row = model_class.objects.first()

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, row)
    assert not model_admin.has_delete_permission(request, row)
    info = model_class._meta.app_label, model_class._meta.model_name
    assert staff_client.get(reverse("admin:{}_{}_add".format(*info))).status_code == 403
    assert (
        staff_client.post(
            reverse("admin:{}_{}_delete".format(*info), args=[row.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert model_class.objects.filter(pk=row.pk).exists()


def test_staff_add_a_user_by_email_and_full_name(staff_client):
    response = staff_client.post(
        reverse("admin:access_user_add"),
        {
            "email": "new@example.org",
            "full_name": "New Person",
            "usable_password": "true",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
            "emailaddress_set-TOTAL_FORMS": "0",
            "emailaddress_set-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content
    user = User.objects.get(email="new@example.org")
    assert user.full_name == "New Person"
    assert user.check_password("a-long-enough-passphrase")


def test_adding_a_license_version_publishes_it_through_the_service(staff_client, application_tier):
    license = application_tier.license

    response = staff_client.post(
        reverse("admin:access_licenseversion_add"), {"license": license.pk, "text": "Version two text."}
    )

    assert response.status_code == 302
    version = license.current_version
    assert (version.number, version.text_sha256) == (2, LicenseVersion.hash_text("Version two text."))
    assert AuditEvent.objects.filter(action="license.version_published", target_id=version.pk).exists()


def test_an_organization_page_lists_its_members(staff_client, owner, organization):
    response = staff_client.get(reverse("admin:releases_organization_change", args=[organization.pk]))

    assert response.status_code == 200
    assert 'name="memberships-0-user"' in response.content.decode()


def test_a_token_is_never_added_in_the_admin(staff_client):
    assert staff_client.get(reverse("admin:access_accesstoken_add")).status_code == 403
