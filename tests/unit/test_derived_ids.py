"""Output ids are uuid5 of the input's id: the fast derivation gives exactly what the uuid module
gives, for every id it is handed, or fails as the uuid module fails. Ids already in the log were
derived the slow way, so a rebuild's re-derived ids must match them byte for byte."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.envelope import derived_id

names = st.text(max_size=40)
forms = st.sampled_from(
    [str, lambda u: str(u).upper(), lambda u: u.hex, lambda u: f"{{{u}}}", lambda u: u.urn]
)


def reference(parent: str, name: str) -> str:
    return str(uuid.uuid5(uuid.UUID(parent), name))


@given(st.uuids(), forms, names)
def test_every_form_of_a_uuid_derives_what_uuid5_derives(
    parent: uuid.UUID, form: object, name: str
) -> None:
    text = form(parent)  # type: ignore[operator]
    assert derived_id(text, name) == reference(text, name)


@given(st.text(alphabet="0123456789abcdefABCDEF- {}xg", min_size=30, max_size=40), names)
def test_a_near_uuid_derives_the_same_or_fails_the_same(parent: str, name: str) -> None:
    try:
        expected = reference(parent, name)
    except ValueError:
        with pytest.raises(ValueError):
            derived_id(parent, name)
        return
    assert derived_id(parent, name) == expected


def test_an_id_already_in_the_log_is_derived_again() -> None:
    # RFC 4122 uuid5 of this namespace and name, as every earlier release wrote it.
    parent = "6f1c8e52-3c1e-5b7a-9d2e-4a0b8c7d1e93"
    assert derived_id(parent, "/0") == "e6111dcb-ceb1-5b3a-9fc1-bb9e6a2f1f2a"
    assert derived_id(parent, "scope/12") != derived_id(parent, "scope/13")
