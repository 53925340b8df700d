"""URLconf of the download-URL bench: the portal's routes plus the baseline they are compared with.

The baseline is the least a download route can do: presign one URL for a fixed object and answer 302,
through the same middleware, no authentication, no query, no audit. It is mounted here only, never in
portal/urls.py.
"""

from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path

from portal import storage
from portal.urls import handler404  # noqa: F401 - the root URLconf's 404 handler, as in production
from portal.urls import urlpatterns as portal_urlpatterns

BARE_PATH = "bench/bare-presign"
# The bench stores the artifact the real routes issue under this key, so all three sign the same object.
BARE_KEY = "bench/model.safetensors"
BARE_FILENAME = "model.safetensors"


def bare_presign(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(
        storage.presign_download(key=BARE_KEY, version_id=None, filename=BARE_FILENAME)
    )


# First: the portal's last include (the hub's catch-all paths) must not shadow it.
urlpatterns = [path(BARE_PATH, bare_presign, name="bench-bare-presign"), *portal_urlpatterns]
