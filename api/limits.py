"""Refuse API request bodies that are too large or not JSON, before any view reads them."""

from __future__ import annotations

from django.conf import settings

from api.errors import error_response

API_PREFIX = "/api/"
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class ApiRequestLimits:
    """Middleware: under /api/, a request with a body must be JSON and at most API_MAX_BODY_BYTES.

    Checked on the declared Content-Length, so an oversized body is never read. WSGI servers
    hand Django no body without a Content-Length, so the declared length is the whole story.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(API_PREFIX) and request.method in BODY_METHODS:
            refused = self._refusal(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    @staticmethod
    def _refusal(request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response("invalid_content_length", "Content-Length is not a number.", status=400)
        if length > settings.API_MAX_BODY_BYTES:
            return error_response(
                "body_too_large",
                f"The request body is {length} bytes; the limit is {settings.API_MAX_BODY_BYTES}.",
                status=413,
            )
        content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if length > 0 and content_type != "application/json":
            return error_response(
                "unsupported_media_type",
                f"Send the body as application/json, not {content_type or 'an unnamed type'}.",
                status=415,
            )
        return None
