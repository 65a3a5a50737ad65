"""Alembic environment: runs on the connection that `leads_api.store.migrate` hands over.

An upgrade that reaches the newest revision ends by rendering the lead objects that are not
stored yet (store/migrate.py render_stored_objects), in the same transaction: a revision may
add the column or empty it, and only the newest schema has every column the rendering reads.
"""

from alembic import context
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from leads_api.store.migrate import render_stored_objects
from leads_api.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
    head = ScriptDirectory.from_config(context.config).get_current_head()
    if MigrationContext.configure(connection).get_current_revision() == head:
        render_stored_objects(connection)
