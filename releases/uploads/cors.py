"""The origins the browser uploader PUTs parts from, for the bucket's CORS rule."""

from __future__ import annotations

import urllib.parse

from django.conf import settings


def upload_cors_origins() -> list[str]:
    """The origins the browser uploader runs on: SITE_URL, and the same scheme and port on each plain
    host of ALLOWED_HOSTS (the demo answers on 127.0.0.1 and localhost). The bucket's CORS rule must
    allow them (``manage.py bucket_cors``)."""
    site = urllib.parse.urlsplit(settings.SITE_URL)
    port = f":{site.port}" if site.port else ""
    origins = [f"{site.scheme}://{site.netloc}"]
    for host in settings.ALLOWED_HOSTS:
        origin = f"{site.scheme}://{host}{port}"
        if host and not host.startswith((".", "*")) and origin not in origins:
            origins.append(origin)
    return origins
