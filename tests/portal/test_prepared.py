"""portal/prepared.py: the download hot path's statements are prepared once per connection."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from access import download_rows
from access.audit import GENESIS_HASH, audit_record_with_row
from access.models import AuditChainHead
from releases.models import Organization
from tests.portal.test_settings import GOOD_ENV, print_setting

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's"
)


def run_the_hot_statements(user, slug: str = "prepared") -> None:
    """Each statement a download URL runs, with values that find nothing or write a harmless row."""
    download_rows.token_with_user("no-such-token-hash")
    download_rows.candidates(pk=0)
    download_rows.grants(user, [])
    audit_record_with_row(row=Organization(slug=slug, name="Prepared"), action="test.prepared")


def prepared_in_this_session() -> list[str]:
    with connection.cursor() as cursor:
        # from_sql is false for statements prepared through the protocol, as psycopg prepares them.
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return [statement for (statement,) in cursor.fetchall()]


@pytest.fixture
def fresh_session(transactional_db):
    """A connection of our own: prepared statements belong to one PostgreSQL session."""
    connection.close()
    # A flushed database has no chain head, and starting one runs statements of its own.
    AuditChainHead.objects.get_or_create(pk=AuditChainHead.SINGLETON_ID, defaults={"row_hash": GENESIS_HASH})
    yield
    connection.close()


def test_each_hot_statement_is_prepared_once_and_still_logged(fresh_session, owner):
    with CaptureQueriesContext(connection) as first:
        run_the_hot_statements(owner)
    prepared = prepared_in_this_session()
    with CaptureQueriesContext(connection) as second:
        run_the_hot_statements(owner, slug="prepared-again")

    assert len(prepared) == 4
    assert any("token_hash = $1" in statement for statement in prepared)
    assert any(statement.startswith("WITH head AS") for statement in prepared)
    # The second time each runs by name: nothing more is prepared.
    assert sorted(prepared_in_this_session()) == sorted(prepared)
    # Django logs every prepared statement's SQL, the first time and after (connection.queries).
    assert sorted(query["sql"] for query in first) == sorted(prepared)
    assert sorted(query["sql"] for query in second) == sorted(prepared)


def test_switched_off_nothing_is_prepared(fresh_session, owner, settings):
    settings.DATABASE_PREPARED_STATEMENTS = False

    run_the_hot_statements(owner)

    assert prepared_in_this_session() == []
    assert Organization.objects.filter(slug="prepared").exists()


@pytest.mark.parametrize(("value", "expected"), [(None, "5"), ("false", "None")])
def test_the_setting_lets_psycopg_prepare_or_not(value, expected):
    env = {**GOOD_ENV, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    if value is not None:
        env["DATABASE_PREPARED_STATEMENTS"] = value

    result = print_setting("DATABASES['default']['OPTIONS'].get('prepare_threshold')", env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
