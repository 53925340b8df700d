"""Settings of the server bench/download_urls.py measures: the production settings, unchanged but for
the URLconf (bench/download_urls_site.py adds the bare presigning view to the portal's routes) and the
cache key prefix (the bench's rate-limit counters stay out of a developer portal's on the same Redis).
"""

from portal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.download_urls_site"
CACHES["default"]["KEY_PREFIX"] = "gatehouse-bench-download-urls"  # noqa: F405
