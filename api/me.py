"""Who the caller is, and what their token may do."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema

from access import policy
from api.auth import READ
from api.errors import ERROR_RESPONSES
from releases.selectors import organizations_with_roles

router = Router()


class OrganizationRoleOut(Schema):
    slug: str
    name: str
    roles: list[str]


class MeOut(Schema):
    id: int
    email: str
    full_name: str
    email_verified: bool
    token_scopes: list[str] | None
    token_expires_at: datetime | None
    organizations: list[OrganizationRoleOut]


@router.get("/me", response={200: MeOut, **ERROR_RESPONSES}, auth=READ)
def me(request: HttpRequest):
    """The signed-in user, their organizations and roles, and the calling token's scopes."""
    user = request.auth.user
    token = request.auth.token
    return {
        "id": user.pk,
        "email": user.email,
        "full_name": user.full_name,
        "email_verified": policy.has_verified_email(user),
        "token_scopes": token.scopes if token else None,
        "token_expires_at": token.expires_at if token else None,
        "organizations": [
            {"slug": organization.slug, "name": organization.name, "roles": sorted(roles)}
            for organization, roles in organizations_with_roles(user)
        ],
    }
