"""What the access views share: client address, token authentication, refusals."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.shortcuts import render

from access.errors import InvalidInput, NotAllowed
from access.models import AccessToken
from access.services.tokens import token_from_header
from portal.client_ip import client_ip  # noqa: F401 - the views and API import it from here


def wants_json(request) -> bool:
    return "HTTP_AUTHORIZATION" in request.META or "application/json" in request.headers.get("Accept", "")


def session_or_token(view=None, *, scope: str = AccessToken.Scope.READ):
    """Authenticate by session, or by ``Authorization: Bearer <personal access token>``.

    A token must carry ``scope`` (a session has every scope). Sets ``request.access_token``
    (None for session users). A bad token answers 401 and a token without the scope 403,
    with a JSON error; an anonymous browser is sent to the login page. Use bare
    (``@session_or_token``, scope read) or as ``@session_or_token(scope="download")``.
    """
    if view is None:
        return lambda wrapped: session_or_token(wrapped, scope=scope)

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        request.access_token = None
        header = request.headers.get("Authorization")
        if header is not None:
            try:
                token = token_from_header(header, scope=scope)
            except InvalidInput as error:
                return json_error(error.code, error.message, status=401)
            except NotAllowed as error:
                return json_error(error.code, error.message, status=403)
            request.user = token.user
            request.access_token = token
        elif not request.user.is_authenticated:
            if wants_json(request):
                return json_error("auth_required", "Sign in, or send a personal access token.", status=401)
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def json_error(code: str, message: str, *, status: int, action_url: str = "") -> JsonResponse:
    body = {"error": code, "message": message}
    if action_url:
        body["action_url"] = action_url
    return JsonResponse(body, status=status)


def refusal_response(request, *, code: str, message: str, action_url: str = "", status: int = 403):
    """A refusal that says why and what to do, as JSON for token clients or as a page."""
    if wants_json(request):
        absolute = request.build_absolute_uri(action_url) if action_url else ""
        return json_error(code, message, status=status, action_url=absolute)
    response = render(
        request,
        "access/refused.html",
        {"code": code, "message": message, "action_url": action_url},
        status=status,
    )
    response["Cache-Control"] = "no-store"
    return response
