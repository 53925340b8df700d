"""Personal access tokens: create (shown once), list, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from access.errors import AccessError
from access.forms import TokenForm
from access.models import AccessToken
from access.services.tokens import token_create, token_revoke


@login_required
def token_list(request):
    form = TokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            _, new_token = token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                lifetime_days=form.cleaned_data["lifetime_days"],
            )
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            form = TokenForm()
    tokens = AccessToken.objects.filter(user=request.user, revoked_at__isnull=True)
    response = render(
        request,
        "access/tokens.html",
        {"form": form, "tokens": tokens, "new_token": new_token, "now": timezone.now()},
        status=400 if form.errors else 200,
    )
    # The page may show a raw token once; no cache may keep it.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke_view(request, token_id: int):
    token = get_object_or_404(AccessToken, pk=token_id, user=request.user)
    try:
        token_revoke(token_id=token.pk, user=request.user)
    except AccessError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("token-list")
