"""Session fixtures: the embedded stack (or real services named by the environment) runs once
per test session and is torn down even when tests fail. Tests isolate by unique ids/databases."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from infra.embedded.stack import RunningStack, embedded_stack
from infra.settings import Settings, load_settings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The Docker-only tests are left out unless SAGA_TESTCONTAINERS=1 asks for them: reported as
    deselected, never as a skip that a green run would carry."""
    if load_settings().testcontainers:
        return
    docker = [item for item in items if item.get_closest_marker("docker")]
    if docker:
        config.hook.pytest_deselected(items=docker)
        items[:] = [item for item in items if not item.get_closest_marker("docker")]


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    settings = load_settings()
    if settings.testcontainers:
        from tests.containers import containers_stack

        with containers_stack(settings) as running:
            yield running
        return
    # Not under pytest's tmp dir: that is private to root, and Postgres runs as its own user.
    with embedded_stack(settings) as running:
        yield running
        # Warm helper producers go before the broker does, so none retries into a closed port.
        from tests.integration import kafka_helpers

        kafka_helpers.close_producers()


@pytest.fixture(scope="session")
def settings(stack: RunningStack) -> Settings:
    return stack.settings


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of `admin_url`, dropped afterwards."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(settings: Settings) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    assert settings.database_url
    with fresh_database(settings.database_url) as url:
        yield url


@pytest.fixture
def migrated_database_url(database_url: str) -> str:
    """`database_url` (the same database) with the schema history applied once, as a service
    would at start: every table the code uses exists, created by the migrations only."""
    from db.migrate import upgrade

    upgrade(database_url)
    return database_url


@pytest.fixture
def unique_id() -> str:
    return uuid.uuid4().hex[:12]
