from __future__ import annotations

from sqlalchemy import Engine, inspect

from broker.store import migrate
from broker.store.models import Base


def test_migrations_down_to_base_and_up_again(migrated_engine: Engine) -> None:
    engine = migrated_engine
    expected = {t.name for t in Base.metadata.sorted_tables}
    assert expected <= set(inspect(engine).get_table_names())
    assert migrate.is_current(engine)
    migrate.downgrade(engine, "base")
    assert not (expected & set(inspect(engine).get_table_names()))
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert expected <= set(inspect(engine).get_table_names())
    assert migrate.is_current(engine)


def test_models_and_migrations_agree(migrated_engine: Engine) -> None:
    """Autogenerate finds nothing to do: every model change came with its migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with migrated_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
