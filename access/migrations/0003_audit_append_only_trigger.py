"""Make the audit table append-only in PostgreSQL itself.

The model refuses save() of an existing row and delete(), but QuerySet.update(),
QuerySet.delete() and raw SQL bypass the model; this trigger refuses them too.
Someone with the rights to drop the trigger can still change rows: the hash chain
(manage.py audit_verify) is what detects that.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION access_auditevent_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'access_auditevent is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON access_auditevent
    FOR EACH ROW EXECUTE FUNCTION access_auditevent_refuse_change();
"""
DROP = """
DROP TRIGGER IF EXISTS audit_append_only ON access_auditevent;
DROP FUNCTION IF EXISTS access_auditevent_refuse_change();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("access", "0002_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
