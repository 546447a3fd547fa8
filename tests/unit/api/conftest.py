from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.unit.api.fakes import World, app_for, make_world


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(app_for(world), raise_server_exceptions=False) as c:
        yield c
