"""Researcher-facing pages of the catalogue."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, render

from access.selectors import standings_for_tiers
from releases.markdown import render_markdown
from releases.models import Model
from releases.selectors import catalogue_models, published_releases_with_tiers

CATALOGUE_PAGE_SIZE = 50


def catalogue(request):
    page = Paginator(catalogue_models(), CATALOGUE_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "releases/catalogue.html", {"page": page})


def model_detail(request, org_slug: str, model_slug: str):
    model = get_object_or_404(
        Model.objects.select_related("organization"), organization__slug=org_slug, slug=model_slug
    )
    releases = published_releases_with_tiers(model)
    if not releases:
        # A model is announced by its first published release; until then its page does not exist.
        raise Http404("No such model.")
    tiers = [tier for release in releases for tier in release.tiers.all()]
    standings = standings_for_tiers(request.user, tiers)
    release_rows = [
        {"release": release, "tiers": [(tier, standings[tier.pk]) for tier in release.tiers.all()]}
        for release in releases
    ]
    return render(
        request,
        "releases/model_detail.html",
        {"model": model, "card_html": render_markdown(model.card), "release_rows": release_rows},
    )
