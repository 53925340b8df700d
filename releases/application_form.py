"""A tier's application form and screening rules, as the publisher edits them.

Unlike a tier's files and dates, these may change after the release is published: each
application keeps a copy of the questions it answered (access.questions), and screening reads
the rules once, right after submission (access.screening), so a change only affects
applications submitted after it.
"""

from __future__ import annotations

from django.db import transaction

from access.audit import audit_record
from access.errors import InvalidInput
from access.questions import validate_question_schema
from access.screening import has_rules, validate_screening_rules
from releases.models import Tier
from releases.services import ReleaseError


def tier_application_form_update(
    *,
    tier: Tier,
    actor,
    questions: list[dict],
    screening_rules: dict,
    auto_approve_on_screening: bool,
    auto_reject_on_hard_rule: bool,
) -> Tier:
    """Replace an application tier's questions and screening settings, all or nothing, with one
    ``tier.application_form_changed`` audit event naming what changed (none when nothing did).

    Raises ReleaseError for a tier that takes no applications, malformed questions or rules, rules
    that name a question the form does not ask, and automatic approval without any rule.
    """
    try:
        validate_question_schema(questions)
        rules = validate_screening_rules(screening_rules, questions)
    except InvalidInput as error:
        raise ReleaseError(error.message) from None
    if auto_approve_on_screening and not has_rules(rules):
        raise ReleaseError("Approving on screening needs at least one screening rule.")
    new_values = {
        "questions": questions,
        "screening_rules": rules,
        "auto_approve_on_screening": bool(auto_approve_on_screening),
        "auto_reject_on_hard_rule": bool(auto_reject_on_hard_rule),
    }
    with transaction.atomic():
        tier = Tier.objects.select_for_update().get(pk=tier.pk)
        if tier.gate != Tier.Gate.APPLICATION:
            raise ReleaseError("Only a tier that takes applications has an application form.")
        changed = sorted(field for field, value in new_values.items() if getattr(tier, field) != value)
        if not changed:
            return tier
        for field in changed:
            setattr(tier, field, new_values[field])
        tier.save(update_fields=changed)
        audit_record(
            action="tier.application_form_changed",
            target=tier,
            actor=actor,
            payload={field: new_values[field] for field in changed},
        )
    return tier
