"""The database cache's table (CACHES["default"]), so `manage.py migrate` alone prepares the
database: no start path has to remember `createcachetable`."""

from django.core.management import call_command
from django.db import migrations


def create_cache_tables(apps, schema_editor):
    # Idempotent: a table that exists already is left alone.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("soteria_site", "0002_audit_namespaces")]

    operations = [migrations.RunPython(create_cache_tables, migrations.RunPython.noop)]
