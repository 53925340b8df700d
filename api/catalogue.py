"""The catalogue: models with a published release, and one model with its releases and tiers.

Public, like the catalogue pages: no credentials needed, a token needs ``read``. A model
without a published release does not exist here (404), as on its page. Each tier carries the
caller's gate status (api.tiers.gate_status); anonymous callers see where anyone stands.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router
from ninja.pagination import paginate

from access.selectors import standings_for_tiers
from api.auth import READ_OR_ANONYMOUS
from api.errors import ERROR_RESPONSES
from api.pagination import LimitOffset
from api.schemas_researcher import CatalogueModelOut, ModelDetailOut
from api.tiers import gate_status, tier_api_url
from releases.models import Model
from releases.selectors import catalogue_models, published_releases_with_tiers

router = Router()


@router.get(
    "/models",
    response={200: list[CatalogueModelOut], **ERROR_RESPONSES},
    auth=READ_OR_ANONYMOUS,
    url_name="researcher_models",
)
@paginate(LimitOffset)
def models(request: HttpRequest):
    """Models with at least one published release, by organization and model slug."""
    return catalogue_models()


@router.get(
    "/models/{org_slug}/{model_slug}",
    response={200: ModelDetailOut, **ERROR_RESPONSES},
    auth=READ_OR_ANONYMOUS,
    url_name="researcher_model_detail",
)
def model_detail(request: HttpRequest, org_slug: str, model_slug: str):
    """The model card, and each published release (newest first) with its tiers and the
    caller's gate status on each. The same number of queries whatever the number of tiers."""
    model = get_object_or_404(
        Model.objects.select_related("organization"), organization__slug=org_slug, slug=model_slug
    )
    releases = published_releases_with_tiers(model)
    if not releases:
        # A model is announced by its first published release; until then it does not exist.
        raise Http404("No such model.")
    # request.user is the token's user, the session's, or AnonymousUser on this public read.
    standings = standings_for_tiers(
        request.user, [tier for release in releases for tier in release.tiers.all()]
    )
    return {
        "repo_id": model.full_slug,
        "organization": model.organization,
        "slug": model.slug,
        "name": model.name,
        "summary": model.summary,
        "card": model.card,
        "web_url": request.build_absolute_uri(model.get_absolute_url()),
        "releases": [
            {
                "version": release.version,
                "revision": release.revision,
                "published_at": release.published_at,
                "notes": release.notes,
                "tiers": [
                    {
                        "id": tier.pk,
                        "name": tier.name,
                        "gate": tier.gate,
                        "approval": tier.approval,
                        "opens_at": tier.opens_at,
                        "opened_at": tier.opened_at,
                        "closes_at": tier.closes_at,
                        "gate_status": gate_status(request, tier, standings[tier.pk]),
                        "api_url": tier_api_url(request, tier),
                    }
                    for tier in release.tiers.all()
                ],
            }
            for release in releases
        ],
    }
