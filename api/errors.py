"""JSON errors with stable codes, shared by /api/v1/ and the hub routes.

Every refusal answers ``{"error": <code>, "message": <sentence>}``, plus ``action_url`` when
the client can do something about it (apply, accept a new license) and ``details`` for
input validation. Codes are part of the API's contract: clients branch on them.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse
from django.views.defaults import page_not_found as default_page_not_found
from ninja import Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from access.errors import AccessError, InvalidInput, InvalidTransition, NotAllowed
from api.pagination import MAX_OFFSET, PAGINATION_PARAMETERS


class ApiError(Exception):
    """Raised anywhere in an API request to answer ``status`` with this code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        action_url: str = "",
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.action_url = action_url
        self.headers = headers or {}


class ErrorOut(Schema):
    error: str
    message: str
    action_url: str | None = None
    details: list[dict] | None = None


# Every status an API operation may answer besides success, documented on each operation
# (``response={200: Out, **ERROR_RESPONSES}``) so that the OpenAPI schema tells clients, and
# schemathesis checks, the whole truth: bad input (400, 422), credentials (401), scope, policy
# or CSRF (403), unknown or foreign objects (404), state conflicts (409), body limits (413,
# 415), the rate limit (429) and a store or database that is down (503).
ERROR_RESPONSES = {status: ErrorOut for status in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)}


def error_response(
    code: str,
    message: str,
    *,
    status: int,
    action_url: str = "",
    details: list | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    body: dict = {"error": code, "message": message}
    if action_url:
        body["action_url"] = action_url
    if details is not None:
        body["details"] = details
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response


def api_error_response(error: ApiError) -> JsonResponse:
    return error_response(
        error.code, error.message, status=error.status, action_url=error.action_url, headers=error.headers
    )


# Domain errors of the access services, as HTTP statuses.
_ACCESS_ERROR_STATUS = ((InvalidTransition, 409), (NotAllowed, 403), (InvalidInput, 400))


def access_error_status(error: AccessError) -> int:
    for error_class, status in _ACCESS_ERROR_STATUS:
        if isinstance(error, error_class):
            return status
    return 400


def _is_pagination_error(loc: list[str]) -> bool:
    return len(loc) >= 2 and loc[0] == "query" and loc[-1] in PAGINATION_PARAMETERS


def register_error_handlers(api) -> None:
    """Make every error a NinjaAPI can meet answer in the shared JSON shape."""

    @api.exception_handler(ApiError)
    def _api_error(request: HttpRequest, error: ApiError):
        return api_error_response(error)

    @api.exception_handler(NinjaValidationError)
    def _validation_error(request: HttpRequest, error: NinjaValidationError):
        details = [
            {"loc": [str(part) for part in item.get("loc", ())], "msg": str(item.get("msg", ""))}
            for item in error.errors
        ]
        if details and all(_is_pagination_error(item["loc"]) for item in details):
            return error_response(
                "pagination_out_of_range",
                f"Use 1 <= limit <= {settings.API_PAGE_SIZE_MAX} and 0 <= offset <= {MAX_OFFSET}.",
                status=400,
                details=details,
            )
        return error_response(
            "invalid_input", "The request's parameters or body are not valid.", status=422, details=details
        )

    @api.exception_handler(AuthenticationError)
    def _authentication_error(request: HttpRequest, error: AuthenticationError):
        return error_response("auth_required", "Sign in, or send a personal access token.", status=401)

    @api.exception_handler(HttpError)
    def _http_error(request: HttpRequest, error: HttpError):
        # django-ninja's own refusals; the one a client meets is a body that is not JSON.
        code = "invalid_json" if error.status_code == 400 else "http_error"
        return error_response(code, str(error), status=error.status_code)

    @api.exception_handler(Http404)
    def _not_found(request: HttpRequest, error: Http404):
        return error_response("not_found", "No such object, or it is not yours to see.", status=404)

    @api.exception_handler(AccessError)
    def _access_error(request: HttpRequest, error: AccessError):
        return error_response(error.code, error.message, status=access_error_status(error))


def page_not_found(request: HttpRequest, exception=None):
    """The site's 404 handler: JSON under /api/ (clients parse it), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return error_response("not_found", "No such API route or object.", status=404)
    return default_page_not_found(request, exception)
