"""Limit/offset pagination with explicit bounds and a stable error when they are crossed."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from ninja import Field, Schema
from ninja.pagination import PaginationBase

PAGINATION_PARAMETERS = ("limit", "offset")
# An offset past this is refused: deep offsets make the database walk and discard rows.
MAX_OFFSET = 100_000


class LimitOffset(PaginationBase):
    """``?limit=`` 1..API_PAGE_SIZE_MAX (default API_PAGE_SIZE_DEFAULT), ``?offset=`` 0..MAX_OFFSET.

    Out of range answers 400 ``pagination_out_of_range`` (see api.errors); the page says how
    many items there are in all, so a client knows when to stop.
    """

    class Input(Schema):
        limit: int = Field(settings.API_PAGE_SIZE_DEFAULT, ge=1, le=settings.API_PAGE_SIZE_MAX)
        offset: int = Field(0, ge=0, le=MAX_OFFSET)

    class Output(Schema):
        items: list[Any]
        count: int
        limit: int
        offset: int

    def paginate_queryset(self, queryset, pagination: Input, request, **params):
        return {
            "items": list(queryset[pagination.offset : pagination.offset + pagination.limit]),
            "count": self._items_count(queryset),
            "limit": pagination.limit,
            "offset": pagination.offset,
        }
