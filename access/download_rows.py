"""Hand-written SQL for the reads on the download hot path, built into model instances.

Every download URL a script asks for authenticates a token, loads the file with its tiers and
reads the user's grants. Through the ORM these three queries cost about 9 ms of CPU per URL on
our 2-core machines, mostly compiling SQL and building querysets, against about 1 ms for the
whole of a bare presign-and-redirect view (bench/download_urls.py). Here the SQL text is built
once per process from the models' own metadata, and rows become model instances through
``Model.from_db`` with each field's ``from_db_value`` converter, as the ORM would build them.
The ORM versions stay the reference: tests/access/test_download_rows.py checks that both give
the same answers. The statements run through portal/prepared.py's cursor, so PostgreSQL parses
and plans each once per connection rather than on every URL.
"""

from __future__ import annotations

from functools import cache

from django.db import connection
from django.db.models import Model

from access.models import AccessToken, Grant, LicenseAcceptance, LicenseVersion, User
from portal.prepared import prepared_cursor
from releases.models import Artifact, Organization, Release, Tier
from releases.models import Model as ReleasedModel

# The SQL below is assembled from model metadata (table and column names), never from input;
# every value travels as a parameter. Hence the S608 exemptions.


@cache
def _columns(model: type[Model], alias: str) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def _build(model: type[Model], row, start: int) -> tuple[Model, int]:
    """The instance of ``model`` whose columns start at ``row[start]``; and where the next begins."""
    fields = model._meta.concrete_fields
    values = list(row[start : start + len(fields)])
    for index, field in enumerate(fields):
        if values[index] is not None and hasattr(field, "from_db_value"):
            values[index] = field.from_db_value(values[index], None, connection)
    return model.from_db(connection.alias, [field.attname for field in fields], values), start + len(fields)


@cache
def _token_sql() -> str:
    return (
        f"SELECT {_columns(AccessToken, 't')}, {_columns(User, 'u')}, "
        f"EXISTS (SELECT 1 FROM account_emailaddress e WHERE e.user_id = u.id "
        f"AND UPPER(e.email) = UPPER(u.email) AND e.verified) "
        f"FROM {AccessToken._meta.db_table} t JOIN {User._meta.db_table} u ON u.id = t.user_id "
        f"WHERE t.token_hash = %s"
    )


def token_with_user(token_hash: str) -> tuple[AccessToken, bool] | None:
    """The token with this hash, its user attached, and whether the user's e-mail is verified."""
    with prepared_cursor() as cursor:
        cursor.execute(_token_sql(), [token_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    token, next_column = _build(AccessToken, row, 0)
    token.user, next_column = _build(User, row, next_column)
    return token, bool(row[next_column])


@cache
def _candidates_sql(where: str) -> str:
    link = Tier.artifacts.through._meta.db_table
    return (
        f"SELECT {_columns(Artifact, 'a')}, {_columns(Release, 'r')}, {_columns(ReleasedModel, 'm')}, "
        f"{_columns(Organization, 'o')}, {_columns(Tier, 't')} "
        f"FROM {link} l "
        f"JOIN {Artifact._meta.db_table} a ON a.id = l.artifact_id "
        f"JOIN {Release._meta.db_table} r ON r.id = a.release_id "
        f"JOIN {ReleasedModel._meta.db_table} m ON m.id = r.model_id "
        f"JOIN {Organization._meta.db_table} o ON o.id = m.organization_id "
        f"JOIN {Tier._meta.db_table} t ON t.id = l.tier_id "
        f"WHERE r.status = %s AND {where} "
        f"ORDER BY r.published_at DESC, a.path, t.id"
    )


# The lookups the download routes use, as SQL conditions on the aliases above.
CANDIDATE_FILTERS = {
    "pk": "a.id = %s",
    "path": "a.path = %s",
    "release": "r.id = %s",
    "release__model": "m.id = %s",
    "release__model__slug": "m.slug = %s",
    "release__model__organization__slug": "o.slug = %s",
}


_RELEASE_MODEL_ORGANIZATION_COLUMNS = sum(
    len(model._meta.concrete_fields) for model in (Release, ReleasedModel, Organization)
)


def candidates(**filters) -> list[tuple[Artifact, list[Tier]]]:
    """Files of published releases matching ``filters`` (keys of CANDIDATE_FILTERS), each with its
    tiers, newest release first; release, model and organization attached."""
    unknown = set(filters) - set(CANDIDATE_FILTERS)
    if unknown or not filters:
        raise ValueError(f"candidates() filters on {sorted(CANDIDATE_FILTERS)}, not {sorted(unknown)}")
    names = sorted(filters)
    where = " AND ".join(CANDIDATE_FILTERS[name] for name in names)
    with prepared_cursor() as cursor:
        values = [getattr(filters[name], "pk", filters[name]) for name in names]
        cursor.execute(_candidates_sql(where), [Release.Status.PUBLISHED, *values])
        rows = cursor.fetchall()
    artifacts: dict[int, Artifact] = {}
    tiers: dict[int, list[Tier]] = {}
    for row in rows:
        artifact, column = _build(Artifact, row, 0)
        if artifact.pk not in artifacts:
            artifact.release, column = _build(Release, row, column)
            artifact.release.model, column = _build(ReleasedModel, row, column)
            artifact.release.model.organization, column = _build(Organization, row, column)
            artifacts[artifact.pk] = artifact
            tiers[artifact.pk] = []
        else:
            column += _RELEASE_MODEL_ORGANIZATION_COLUMNS
        tier, _ = _build(Tier, row, column)
        tier.release = artifacts[artifact.pk].release
        tiers[artifact.pk].append(tier)
    return [(artifact, tiers[pk]) for pk, artifact in artifacts.items()]


@cache
def _grants_sql() -> str:
    return (
        f"SELECT {_columns(Grant, 'g')}, {_columns(LicenseAcceptance, 'la')}, "
        f"EXISTS (SELECT 1 FROM {LicenseVersion._meta.db_table} newer "
        f"JOIN {LicenseVersion._meta.db_table} accepted ON accepted.id = la.license_version_id "
        f"WHERE newer.license_id = t.license_id AND newer.requires_reacceptance "
        f"AND newer.number > accepted.number) "
        f"FROM {Grant._meta.db_table} g "
        f"JOIN {LicenseAcceptance._meta.db_table} la ON la.id = g.license_acceptance_id "
        f"JOIN {Tier._meta.db_table} t ON t.id = g.tier_id "
        f"WHERE g.user_id = %s AND g.tier_id = ANY(%s) "
        f"ORDER BY g.granted_at DESC"
    )


def grants(user, tiers: list[Tier]) -> list[Grant]:
    """The user's grants on ``tiers``, newest first, with ``license_outdated`` annotated and the
    acceptance and tier attached: what ``Grant.objects.with_license_state()`` would give."""
    tiers_by_id = {tier.pk: tier for tier in tiers}
    with prepared_cursor() as cursor:
        cursor.execute(_grants_sql(), [user.pk, list(tiers_by_id)])
        rows = cursor.fetchall()
    found = []
    for row in rows:
        grant, column = _build(Grant, row, 0)
        grant.license_acceptance, column = _build(LicenseAcceptance, row, column)
        grant.license_outdated = bool(row[column])
        grant.tier = tiers_by_id[grant.tier_id]
        found.append(grant)
    return found
