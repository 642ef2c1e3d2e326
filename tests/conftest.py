from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from broker.gpus import GpuCatalog
from broker.store.db import make_engine
from broker.store.models import Base

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the project (real recorded payloads and data); tests using it skip where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the recorded payloads live there")
    return SHARED


@pytest.fixture
def payloads(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "payloads"


# --- database ---------------------------------------------------------------------------------------------------
# The suite runs against the database named by BROKER_TEST_DATABASE_URL (CI runs it once on SQLite and once on a
# fresh PostgreSQL database); default: a temporary SQLite file.


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return os.environ.get("BROKER_TEST_DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    from broker.store import migrate

    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def clear_tables(engine: Engine) -> None:
    names = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    """A migrated database, emptied before each test."""
    clear_tables(migrated_engine)
    return migrated_engine


@pytest.fixture(scope="session")
def catalog() -> GpuCatalog:
    return GpuCatalog.load()


# --- runtime and app ---------------------------------------------------------------------------------------------


@pytest.fixture
def settings(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    import dataclasses

    from broker.settings import load_settings

    loaded = load_settings({"BROKER_DATABASE_URL": database_url, "BROKER_DATA_DIR": str(tmp_path)})
    # API tests exercise behaviour, not authentication (tests/auth turns it on explicitly)
    return dataclasses.replace(loaded, server=loaded.server.model_copy(update={"auth": False}))


@pytest.fixture
def runtime(settings, engine: Engine, catalog: GpuCatalog):  # type: ignore[no-untyped-def]
    from broker.runtime import Runtime

    return Runtime(settings=settings, engine=engine, catalog=catalog, env={})
