"""Background work of the releases app."""

from __future__ import annotations

import logging

from celery import shared_task

from releases.services import tiers_open_due

logger = logging.getLogger(__name__)


@shared_task(time_limit=240)
def open_due_tiers() -> list[int]:
    """Open every tier whose date has passed. Run by beat; overlapping runs are safe
    because each tier is claimed with a row lock (see releases.services.tier_open)."""
    opened = tiers_open_due()
    if opened:
        logger.info("Opened tiers %s", opened)
    return opened
