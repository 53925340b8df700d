"""The REST API under /api/v1/: one NinjaAPI, one router per topic.

OpenAPI schema at /api/v1/openapi.json, Swagger UI at /api/v1/docs. Every operation
declares its auth (api.auth) and answers errors in the shape of api.errors.
"""

from __future__ import annotations

from ninja import NinjaAPI

from api import catalogue, downloads, me, review, tiers
from api.errors import register_error_handlers

api = NinjaAPI(
    title="Gatehouse API",
    version="1",
    description=(
        "Staged releases and gated access to model weights. Authenticate with a personal access "
        "token (`Authorization: Bearer gh_…`, scopes read, download, manage) or the browser session "
        '(unsafe methods need the CSRF token). Errors are `{"error": code, "message": …}`.'
    ),
    urls_namespace="api-v1",
    docs_url="/docs",
)
register_error_handlers(api)

api.add_router("/", me.router, tags=["account"])
api.add_router("/", catalogue.router, tags=["catalogue"])
api.add_router("/", tiers.router, tags=["tiers"])
api.add_router("/", downloads.router, tags=["downloads"])
api.add_router("/", review.router, tags=["review"])
