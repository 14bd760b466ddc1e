"""Session indexes the session writer keeps up to date on every row, and no query reads.

- ``api_key`` alone: every query by key is served by the (api_key, connected_at) index,
  whose first column it is.
- PostgreSQL's ``varchar_pattern_ops`` twins that ``db_index`` adds to ``api_key``,
  ``peer_id`` and ``node``: no query uses LIKE on these (the admin's peer id prefix
  search has its own ``UPPER(peer_id)`` index, migration 0003).

``peer_id`` and ``node`` keep a plain index each, renamed. On the database, indexes
are dropped and created directly: Django's AlterField would copy the whole table three
times on SQLite. Measured (docs/decisions.md, "writer"): PostgreSQL's CPU per session
written and ended 95 -> 70 us; SQLite's ~0.5-1 us less per session.
"""

from django.db import migrations, models

TABLE = "signalling_peersession"
NEW = {"session_peer_id": "peer_id", "session_node": "node"}


def _single_column_indexes(schema_editor) -> dict[str, str]:
    """name -> column of the plain one-column indexes on api_key, peer_id and node."""
    conn = schema_editor.connection
    with conn.cursor() as cursor:
        found = conn.introspection.get_constraints(cursor, TABLE)
    return {name: info["columns"][0] for name, info in found.items()
            if info["index"] and not info["unique"] and not info["primary_key"]
            and len(info["columns"]) == 1
            and info["columns"][0] in ("api_key", "peer_id", "node")}


def forwards(apps, schema_editor):
    qn = schema_editor.quote_name
    for name in _single_column_indexes(schema_editor):
        if name not in NEW:
            schema_editor.execute(f"DROP INDEX IF EXISTS {qn(name)}")
    for name, column in NEW.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {qn(name)} ON {qn(TABLE)} "
                              f"({qn(column)})")


def backwards(apps, schema_editor):
    session = apps.get_model("signalling", "PeerSession")
    qn = schema_editor.quote_name
    for name in NEW:
        schema_editor.execute(f"DROP INDEX IF EXISTS {qn(name)}")
    for column in ("api_key", "peer_id", "node"):
        field = session._meta.get_field(column)
        old = field.clone()
        old.db_index = True
        old.set_attributes_from_name(column)
        # what db_index=True makes (on PostgreSQL with its LIKE twin)
        for sql in schema_editor._field_indexes_sql(session, old):
            schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ('signalling', '0003_usage_rollup_and_search_index'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='peersession',
                    name='api_key',
                    field=models.CharField(max_length=64),
                ),
                migrations.AlterField(
                    model_name='peersession',
                    name='node',
                    field=models.CharField(max_length=100),
                ),
                migrations.AlterField(
                    model_name='peersession',
                    name='peer_id',
                    field=models.CharField(max_length=255),
                ),
                migrations.AddIndex(
                    model_name='peersession',
                    index=models.Index(fields=['peer_id'], name='session_peer_id'),
                ),
                migrations.AddIndex(
                    model_name='peersession',
                    index=models.Index(fields=['node'], name='session_node'),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
