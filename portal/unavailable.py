"""PostgreSQL unreachable: answer 503 with an explanation, never a 500, a redirect or a half-done request.

Every state change in Gatehouse writes its rows and its audit event in one transaction (a download
event and its audit row before the redirect to storage), so when the database fails the transaction
fails whole and the exception travels up; this module decides what the client then sees: 503 with
Retry-After, in the shape the client reads (the hub's error headers on the huggingface_hub routes,
``{"error": "database_unavailable", "message": ...}`` under /api/ and for token clients, a short page
for browsers), and no Location header.

It is the site's ``handler500`` (portal/urls.py) rather than a middleware: Django turns an exception
into a response at the middleware layer that raised it, so a middleware's ``process_exception`` sees
only the view's exceptions and a try/except around ``get_response`` sees none, while handler500 is
called for all of them: from the view, from a middleware that loads the session or the user, from
another error handler (the 404 page asks who is signed in), and from django-ninja, which re-raises
what it has no handler for. Django logs each one at ERROR ("Service Unavailable: <path>", with the
traceback), so operators hear of the outage. With DEBUG on, Django shows its technical 500 page instead.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve
from django.views import defaults

from access.views.common import wants_json
from api.errors import error_response
from api.hub.protocol import HubError, hub_error_response

# What psycopg raises when the server cannot be reached, goes away mid-request, or refuses connections
# (too many clients, shutting down); a deadlock or a cancelled statement is also worth a retry.
DATABASE_ERRORS = (OperationalError, InterfaceError)
CODE = "database_unavailable"
MESSAGE = (
    "Gatehouse cannot reach its database right now, so it can neither check nor record anything. "
    "Nothing was done; please try again in a minute."
)
RETRY_AFTER_SECONDS = 30


def server_error(request: HttpRequest) -> HttpResponse:
    """The site's handler500: 503 for a database outage, Django's 500 page for anything else."""
    error = sys.exc_info()[1]
    if isinstance(error, DATABASE_ERRORS):
        return database_unavailable_response(request)
    return defaults.server_error(request)


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 in the caller's shape. Touches neither the database nor the session: both may be down."""
    retry_after = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if _is_hub_route(request):
        return hub_error_response(request, HubError(503, MESSAGE, headers=retry_after))
    if request.path.startswith("/api/") or wants_json(request):
        return error_response(CODE, MESSAGE, status=503, headers=retry_after)
    # Rendered without the request: the context processors would ask the session who is signed in.
    response = HttpResponse(render_to_string("unavailable.html", {"message": MESSAGE}), status=503)
    response["Retry-After"] = retry_after["Retry-After"]
    response["Cache-Control"] = "no-store"
    return response


def _is_hub_route(request: HttpRequest) -> bool:
    # The match is missing when a middleware failed before URL resolution; resolving needs no database.
    match = request.resolver_match
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return False
    return match.func.__module__.startswith("api.hub.")
