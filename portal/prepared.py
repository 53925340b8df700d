"""Server-prepared statements for the few fixed statements every download URL runs.

Django's psycopg backend binds parameters on the client and never prepares, so PostgreSQL parses
and plans each statement anew. For the download hot path (access/download_rows.py and
``access.audit.audit_record_with_row``) planning costs more than executing: on the bench scene
(bench/download_urls.py) the three reads took about 1.1 ms of PostgreSQL's CPU per URL unprepared
and 0.2 ms prepared. This cursor binds parameters on the server and prepares each statement on its
first use on a connection; psycopg keeps at most ``prepared_max`` (100) per connection and drops
the least recently used. The statements go through Django's cursor wrapper, so errors are Django's
and ``CaptureQueriesContext`` and ``connection.queries`` see them like any other.

Only these statements are prepared: the rest of the portal keeps Django's default binding. Behind a
connection pooler in transaction mode that does not track prepared statements (PgBouncer before
1.21, or without ``max_prepared_statements``), set ``DATABASE_PREPARED_STATEMENTS=false``.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.db import connection


def prepared_cursor():
    """A cursor of the default (PostgreSQL) connection whose statements are prepared on first use.

    With ``DATABASE_PREPARED_STATEMENTS`` off, Django's own cursor. Use it as Django's:
    ``with prepared_cursor() as cursor: cursor.execute(sql, params)``.
    """
    if not settings.DATABASE_PREPARED_STATEMENTS:
        return connection.cursor()
    # What connection.cursor() does, with our cursor class in place of the configured one.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_prepared_cursor_class()(connection.connection))


@cache
def _prepared_cursor_class():
    # Imported here: the PostgreSQL backend module needs psycopg, which the SQLite demo may lack.
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparedCursor(ServerBindingCursor):
        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True, binary=binary)

        def _send_query_prepared(self, name, pgq, *, binary=None):
            # psycopg records the statement it ran only when it did not prepare it, and Django's
            # connection.queries (CaptureQueriesContext, the debug log) takes the SQL from that
            # record: keep it for prepared ones too. The text has $1, $2 for the parameters.
            self._query = pgq
            super()._send_query_prepared(name, pgq, binary=binary)

    return PreparedCursor
