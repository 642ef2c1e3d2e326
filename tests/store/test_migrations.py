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


def test_0006_keys_existing_offers_and_drops_the_interval_foreign_keys(migrated_engine: Engine) -> None:
    """Upgrade over data: existing offers get their key hash, nothing is lost (SQLite rebuilds ``offers``, which
    must not cascade into the tables referencing it), and a downgrade restores the old key and foreign keys."""
    from datetime import UTC, datetime

    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from broker.domain import OfferKey
    from broker.store.bulk import Dialect
    from broker.store.ingest import offer_key_hash
    from tests.conftest import clear_tables

    engine = migrated_engine
    before = ScriptDirectory(str(migrate.MIGRATIONS)).get_revision("0006").down_revision
    assert isinstance(before, str)
    keys = [OfferKey("aws", "us-east-1", "p5.48xlarge", "on_demand"), OfferKey("gcp", "us-central1", "a3", "spot", "b")]
    counts = "SELECT (SELECT COUNT(*) FROM offers), (SELECT COUNT(*) FROM price_intervals), "
    counts += "(SELECT COUNT(*) FROM availability_intervals), (SELECT COUNT(*) FROM history_withdrawals)"
    clear_tables(engine)
    migrate.downgrade(engine, before)
    try:
        with engine.begin() as conn:
            now = Dialect(conn).dt(datetime(2026, 11, 1, tzinfo=UTC))
            for i, k in enumerate(keys, start=1):
                conn.execute(
                    text(
                        "INSERT INTO offers (id, source, provider, region, zone, instance_type, purchase, term, "
                        "payment, plan, gpu_model, gpu_known, gpu_raw_name, gpu_count, attrs, demo, meta_hash, "
                        "first_seen_at) VALUES (:id, 'src', :p, :r, :z, :it, :pu, '', '', '', 'H100-SXM', true, "
                        "'H100', 8, '{}', false, '', :t)"
                    ),
                    {"id": i, "p": k.provider, "r": k.region, "z": k.zone, "it": k.instance_type, "pu": k.purchase,
                     "t": now},
                )  # fmt: skip
                conn.execute(
                    text(
                        "INSERT INTO price_intervals (offer_id, hourly_usd, valid_from, last_confirmed_at) "
                        "VALUES (:id, 1.5, :t, :t)"
                    ),
                    {"id": i, "t": now},
                )
                conn.execute(
                    text(
                        "INSERT INTO availability_intervals (offer_id, state, valid_from, last_confirmed_at) "
                        "VALUES (:id, 'unknown', :t, :t)"
                    ),
                    {"id": i, "t": now},
                )
                conn.execute(text("INSERT INTO history_withdrawals (offer_id, gone_at) VALUES (:id, :t)"),
                             {"id": i, "t": now})  # fmt: skip
        migrate.upgrade(engine, "0006")
        inspector = inspect(engine)
        assert not inspector.get_foreign_keys("price_intervals")
        assert not inspector.get_foreign_keys("availability_intervals")
        with engine.connect() as conn:
            assert tuple(conn.execute(text(counts)).one()) == (2, 2, 2, 2)
            hashes = dict(conn.execute(text("SELECT id, key_hash FROM offers")).all())
        assert hashes == {i: offer_key_hash(k) for i, k in enumerate(keys, start=1)}

        migrate.downgrade(engine, before)
        inspector = inspect(engine)
        assert "key_hash" not in {c["name"] for c in inspector.get_columns("offers")}
        assert {u["name"] for u in inspector.get_unique_constraints("offers")} == {"uq_offers_key"}
        assert len(inspector.get_foreign_keys("price_intervals")) == 2
        assert len(inspector.get_foreign_keys("availability_intervals")) == 1
        with engine.connect() as conn:
            assert tuple(conn.execute(text(counts)).one()) == (2, 2, 2, 2)
    finally:
        migrate.upgrade(engine)
        clear_tables(engine)
