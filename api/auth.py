"""Who is calling: a personal access token (``Authorization: Bearer``) or the session.

A token must be live (not revoked, not expired) and carry the scope the route needs; a
session stands for the user themself and has every scope, but its unsafe requests must
carry Django's CSRF token. Each authenticated request counts against the caller's rate
limit. The same function serves /api/v1/ (through ``ApiAuth``) and the hub routes.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from ninja.security.base import AuthBase
from ninja.utils import check_csrf

from access.errors import InvalidInput, NotAllowed
from access.models import AccessToken
from access.services.tokens import token_from_header
from api.errors import ApiError
from api.ratelimit import rate_limit_check

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Caller:
    user: object
    token: AccessToken | None


def authenticate_request(request: HttpRequest, *, scope: str, required: bool = True) -> Caller | None:
    """Authenticate ``request`` for ``scope``; sets ``request.user`` and ``request.access_token``.

    Returns None for an anonymous caller when ``required`` is False (public reads).
    """
    request.access_token = None
    header = request.headers.get("Authorization")
    if header is not None:
        try:
            token = token_from_header(header, scope=scope)
        except InvalidInput as error:
            raise ApiError(401, error.code, error.message) from error
        except NotAllowed as error:
            raise ApiError(403, error.code, error.message) from error
        rate_limit_check(f"token:{token.pk}")
        request.user = token.user
        request.access_token = token
        return Caller(user=token.user, token=token)
    if request.user.is_authenticated:
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise ApiError(403, "csrf_failed", "The request lacks a valid CSRF token; reload the page.")
        rate_limit_check(f"user:{request.user.pk}")
        return Caller(user=request.user, token=None)
    if required:
        raise ApiError(401, "auth_required", "Sign in, or send a personal access token.")
    return None


class ApiAuth(AuthBase):
    """django-ninja auth callable: ``auth=ApiAuth("download")`` on a router or an operation.

    Documented in the OpenAPI schema as HTTP bearer; the session works as well.
    """

    openapi_type = "http"
    openapi_scheme = "bearer"

    def __init__(self, scope: str, *, required: bool = True):
        self.scope = scope
        self.required = required
        super().__init__()

    def __call__(self, request: HttpRequest):
        caller = authenticate_request(request, scope=self.scope, required=self.required)
        # ninja treats a falsy result as "not authenticated"; an anonymous public read is allowed.
        return caller or AnonymousCaller


class _Anonymous:
    user = None
    token = None

    def __bool__(self) -> bool:
        return True


AnonymousCaller = _Anonymous()

READ = ApiAuth(AccessToken.Scope.READ)
READ_OR_ANONYMOUS = ApiAuth(AccessToken.Scope.READ, required=False)
DOWNLOAD = ApiAuth(AccessToken.Scope.DOWNLOAD)
MANAGE = ApiAuth(AccessToken.Scope.MANAGE)
