"""``manage.py seed_demo``: the demo's organization, model, release, tiers and accounts.

Idempotent: each piece is looked up first and created only when missing, so running the demo again (or after
an interrupted seed) adds nothing twice. Every change goes through the service functions, which write the
audit events; storage calls run outside any transaction. Run by portal/demo.py; it works against any settings
with a reachable S3 bucket.
"""

from __future__ import annotations

from datetime import timedelta

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from access.models import Invitation, License
from access.services.grants import invitation_create
from access.services.licenses import license_create
from portal import storage
from portal.demo import DEMO_PASSWORD, PUBLISHER, RED_TEAMER, RESEARCHER, REVIEWER, DemoAccount
from releases.demo_artifacts import demo_release_files
from releases.members import invitation_accept, membership_change_role, membership_invite
from releases.models import Membership, Model, Organization, OrganizationInvitation, Release, Tier
from releases.rollout import tier_create
from releases.services import (
    artifact_add,
    model_create,
    organization_create,
    release_create,
    release_publish,
    tiers_open_due,
)
from releases.uploads import upload_cors_origins

ORGANIZATION_SLUG = "acme"
MODEL_SLUG = "llama-lite"
RELEASE_VERSION = "v1.0"
LICENSE_NAME = "Acme Responsible Use License"

MODEL_CARD = """\
# Llama Lite

Llama Lite is Acme AI's smallest open-weight language model: one transformer layer, eight hidden units and a
64-word vocabulary. It is small enough to download in a blink, which makes it perfect for trying out a
staged release.

## Intended use

- Research on model evaluation, interpretability and red-teaming methods.
- Teaching: every weight fits on one screen.

## Out of scope

Anything that needs the model to say something sensible.

## Files

| file | what it is |
|---|---|
| `model.safetensors` | the weights, float32, in the safetensors format |
| `config.json` | the architecture (Llama-style) |
| `tokenizer.json` | a word-level tokenizer in the Hugging Face format |

## Rollout

1. **Red team**: invited red-teamers get the weights first.
2. **Researchers**: vetted researchers apply; a reviewer decides within a week.
3. **Public**: everyone who accepts the license, a little later.
"""

LICENSE_TEXT = """\
Acme Responsible Use License, version 1

1. You may use, copy and modify the Llama Lite weights ("the Model") for research, teaching and evaluation.
2. You will not use the Model, or anything derived from it, to harm people, to deceive them, or to break the
   law.
3. You will report security or safety problems you find to safety@acme.example before publishing them, and
   give Acme AI 30 days to respond.
4. You will not redistribute the Model's weights outside your organization before the Public tier opens.
5. The Model is provided as is, without warranty of any kind.
"""

RESEARCHER_QUESTIONS = [
    {
        "name": "project_url",
        "label": "Project URL",
        "type": "text",
        "required": False,
        "help_text": "A page about the project you will use the model for, if there is one.",
    }
]


class Command(BaseCommand):
    help = "Create the demo's organization, model, release v1.0, tiers and accounts (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--public-opens-in",
            type=int,
            default=300,
            metavar="SECONDS",
            help="Open the Public tier this many seconds after the seed first creates it (default: 300).",
        )

    def handle(self, *args, public_opens_in: int, **options):
        if public_opens_in < 0:
            raise CommandError("--public-opens-in must be zero or more seconds.")
        publisher = self._account(PUBLISHER)
        reviewer = self._account(REVIEWER)
        self._account(RESEARCHER)
        red_teamer = self._account(RED_TEAMER)

        organization = Organization.objects.filter(slug=ORGANIZATION_SLUG).first()
        if organization is None:
            organization = organization_create(name="Acme AI", slug=ORGANIZATION_SLUG, owner=publisher)
        self._membership(organization, reviewer, role=Membership.Role.REVIEWER, actor=publisher)
        model = Model.objects.filter(organization=organization, slug=MODEL_SLUG).first()
        if model is None:
            model = model_create(
                organization=organization,
                slug=MODEL_SLUG,
                name="Llama Lite",
                summary="A tiny Llama-style language model for trying out staged releases.",
                card=MODEL_CARD,
                actor=publisher,
            )
        license = License.objects.filter(organization=organization, name=LICENSE_NAME).first()
        if license is None:
            license = license_create(
                organization=organization, name=LICENSE_NAME, text=LICENSE_TEXT, actor=publisher
            )
        release = Release.objects.filter(model=model, version=RELEASE_VERSION).first()
        if release is None:
            release = release_create(
                model=model, version=RELEASE_VERSION, notes="Weights, config and tokenizer.", actor=publisher
            )
        if release.status == Release.Status.DRAFT:
            self._upload_artifacts(release, actor=publisher)
            release = release_publish(release=release, actor=publisher)
            self.stdout.write(f"Published {release} (revision {release.revision})")
        self._create_tiers(release, license=license, public_opens_in=public_opens_in, actor=publisher)

        red_team = release.tiers.get(name="Red team")
        if not Invitation.objects.filter(tier=red_team, email=red_teamer.email).exists():
            invitation_create(tier=red_team, email=red_teamer.email, actor=publisher)

        # The tiers whose date has come open now; the Public tier is left to the worker and beat.
        tiers_open_due()
        for tier in release.tiers.order_by("position"):
            when = (
                f"open since {tier.opened_at:%H:%M:%S}"
                if tier.is_open
                else f"opens at {tier.opens_at:%H:%M:%S}"
            )
            self.stdout.write(f"Tier {tier.name!r} ({tier.get_gate_display()}): {when} UTC")
        self.stdout.write(self.style.SUCCESS("Demo data is in place."))

    def _account(self, account: DemoAccount):
        """The account with a verified primary e-mail address, created on the first run."""
        user_model = get_user_model()
        with transaction.atomic():
            user = user_model.objects.filter(email=account.email).first()
            if user is None:
                user = user_model.objects.create_user(
                    email=account.email, password=DEMO_PASSWORD, full_name=account.full_name
                )
                self.stdout.write(f"Created account {account.email}")
            EmailAddress.objects.update_or_create(
                user=user, email=account.email, defaults={"verified": True, "primary": True}
            )
        return user

    def _membership(self, organization: Organization, user, *, role: str, actor) -> Membership:
        """``user`` in ``organization`` with ``role``, the way anyone joins: invited by an owner (``actor``),
        accepting with their verified address, so that the members' rules hold and the history shows how
        they joined. The invitation's e-mail task, run by a worker later, finds it taken and sends nothing;
        an invitation left open by an interrupted seed is accepted."""
        membership = Membership.objects.filter(organization=organization, user=user).first()
        if membership is None:
            invitation = OrganizationInvitation.objects.filter(
                organization=organization, email__iexact=user.email, accepted_at__isnull=True
            ).first()
            if invitation is None:
                invitation = membership_invite(
                    organization=organization, email=user.email, role=role, actor=actor
                )
            membership = invitation_accept(invitation=invitation, user=user)
        if membership.role != role:
            membership = membership_change_role(membership=membership, role=role, actor=actor)
        return membership

    def _upload_artifacts(self, release: Release, *, actor) -> None:
        storage.ensure_bucket()
        # The browser uploader PUTs parts straight to the bucket from the portal's pages.
        storage.ensure_bucket_cors(upload_cors_origins())
        present = set(release.artifacts.values_list("path", flat=True))
        for demo_file in demo_release_files():
            if demo_file.path in present:
                continue
            key = f"{ORGANIZATION_SLUG}/{MODEL_SLUG}/{RELEASE_VERSION}/{demo_file.path}"
            stored = storage.put_object(key=key, body=demo_file.body, content_type=demo_file.content_type)
            artifact_add(
                release=release,
                path=demo_file.path,
                size=stored.size,
                sha256=stored.sha256,
                storage_key=stored.key,
                object_version=stored.version_id or "",
                actor=actor,
            )
            self.stdout.write(f"Uploaded {demo_file.path} ({stored.size} bytes, sha256 {stored.sha256})")

    def _create_tiers(self, release: Release, *, license: License, public_opens_in: int, actor) -> None:
        artifacts = list(release.artifacts.all())
        now = timezone.now()
        plan = [
            {
                "name": "Red team",
                "position": 0,
                "gate": Tier.Gate.INVITATION,
                "opens_at": now,
                "grant_duration_days": 90,
                "description": "Invited red-teamers test the model before anyone else.",
            },
            {
                "name": "Researchers",
                "position": 1,
                "gate": Tier.Gate.APPLICATION,
                "approval": Tier.Approval.MANUAL,
                "opens_at": now,
                "grant_duration_days": 365,
                "review_days": 7,
                "questions": RESEARCHER_QUESTIONS,
                "description": "Researchers apply; a reviewer at Acme AI decides within a week.",
            },
            {
                "name": "Public",
                "position": 2,
                "gate": Tier.Gate.CLICK_THROUGH,
                "opens_at": now + timedelta(seconds=public_opens_in),
                "description": "Everyone who accepts the license.",
            },
        ]
        existing = set(release.tiers.values_list("name", flat=True))
        for tier in plan:
            if tier["name"] not in existing:
                tier_create(release=release, artifacts=artifacts, license=license, actor=actor, **tier)
                self.stdout.write(f"Created tier {tier['name']!r}")
