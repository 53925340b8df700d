"""``manage.py bucket_cors``: let the browser uploader PUT parts straight to the bucket.

Browsers send an upload part to the bucket from the portal's pages, a cross-origin request: the bucket's
CORS configuration must allow PUT from the portal's origins and expose the ETag header. This replaces the
bucket's CORS configuration with that one rule. Run it once per bucket (and again when SITE_URL changes).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from portal import storage
from releases.uploads import upload_cors_origins


class Command(BaseCommand):
    help = "Allow the portal's origins to upload parts to the bucket (CORS), and show the result."

    def add_arguments(self, parser):
        parser.add_argument(
            "--origin",
            action="append",
            dest="origins",
            help="an origin to allow, e.g. https://gatehouse.example.org (repeatable); "
            "default: SITE_URL and the same scheme and port on each host of ALLOWED_HOSTS",
        )

    def handle(self, *args, origins=None, **options):
        origins = origins or upload_cors_origins()
        try:
            storage.ensure_bucket_cors(origins)
            allowed = storage.bucket_cors_origins()
        except (ValueError, storage.StorageError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"The bucket now lets these origins upload parts: {', '.join(allowed)}")
