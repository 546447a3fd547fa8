"""Stripe's documented Idempotency-Key behaviour, on the localstripe our stack launches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from infra.embedded.localstripe import LocalStripe
from tests.integration.payments.localstripe_peer import running_localstripe


@pytest.fixture(scope="module")
def peer() -> Iterator[LocalStripe]:
    with running_localstripe() as running:
        yield running


def create(
    peer: LocalStripe, key: str, amount: int = 1000, *, api_key: str | None = None, tag: str = ""
) -> httpx.Response:
    return httpx.post(
        f"{peer.url}/v1/payment_intents",
        data={
            "amount": str(amount),
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "confirm": "true",
            "metadata[tag]": tag,
        },
        headers={"Authorization": f"Bearer {api_key or peer.api_key}", "Idempotency-Key": key},
        timeout=10,
    )


def intents_tagged(peer: LocalStripe, tag: str) -> list[str]:
    found: list[str] = []
    params: dict[str, str] = {"limit": "100"}
    while True:
        page = httpx.get(
            f"{peer.url}/v1/payment_intents",
            params=params,
            headers={"Authorization": f"Bearer {peer.api_key}"},
            timeout=10,
        ).json()
        found += [pi["id"] for pi in page["data"] if pi["metadata"].get("tag") == tag]
        if not page["has_more"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]


@pytest.mark.integration
def test_same_key_same_parameters_replays_the_same_intent(peer: LocalStripe) -> None:
    key, tag = str(uuid.uuid4()), uuid.uuid4().hex
    first = create(peer, key, tag=tag)
    again = create(peer, key, tag=tag)
    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "requires_capture"
    assert intents_tagged(peer, tag) == [first.json()["id"]]


@pytest.mark.integration
def test_same_key_other_parameters_is_an_idempotency_error(peer: LocalStripe) -> None:
    key, tag = str(uuid.uuid4()), uuid.uuid4().hex
    assert create(peer, key, 1000, tag=tag).status_code == 200
    other = create(peer, key, 1200, tag=tag)
    assert other.status_code == 400
    error = other.json()["error"]
    assert error["type"] == "idempotency_error"
    assert "same parameters" in error["message"]
    assert len(intents_tagged(peer, tag)) == 1


@pytest.mark.integration
def test_eight_concurrent_creates_with_one_key_make_one_intent(peer: LocalStripe) -> None:
    key, tag = str(uuid.uuid4()), uuid.uuid4().hex
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: create(peer, key, tag=tag), range(8)))
    ok = [a for a in answers if a.status_code == 200]
    # Each is either the (replayed) intent or Stripe's "in progress" conflict; never a second.
    assert ok and {a.json()["id"] for a in ok} == {ok[0].json()["id"]}
    for conflict in (a for a in answers if a.status_code != 200):
        assert conflict.status_code == 409
        assert conflict.json()["error"]["type"] == "idempotency_error"
    assert intents_tagged(peer, tag) == [ok[0].json()["id"]]


@pytest.mark.integration
def test_api_keys_are_separate_scopes(peer: LocalStripe) -> None:
    key, tag = str(uuid.uuid4()), uuid.uuid4().hex
    mine = create(peer, key, tag=tag)
    theirs = create(peer, key, api_key=f"sk_test_{uuid.uuid4().hex}", tag=tag)
    assert mine.status_code == theirs.status_code == 200
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert sorted(intents_tagged(peer, tag)) == sorted([mine.json()["id"], theirs.json()["id"]])


@pytest.mark.integration
def test_a_decline_is_saved_and_replayed(peer: LocalStripe) -> None:
    pm = httpx.post(
        f"{peer.url}/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": "4000000000000341",
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
        headers={"Authorization": f"Bearer {peer.api_key}"},
        timeout=10,
    ).json()["id"]
    key = str(uuid.uuid4())
    data = {"amount": "1000", "currency": "eur", "payment_method": pm, "confirm": "true"}
    headers = {"Authorization": f"Bearer {peer.api_key}", "Idempotency-Key": key}
    url = f"{peer.url}/v1/payment_intents"
    first = httpx.post(url, data=data, headers=headers, timeout=10)
    again = httpx.post(url, data=data, headers=headers, timeout=10)
    assert first.status_code == again.status_code == 402
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


@pytest.mark.integration
def test_a_key_over_255_characters_is_an_invalid_request(peer: LocalStripe) -> None:
    answer = create(peer, "k" * 256, tag=uuid.uuid4().hex)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.integration
def test_payment_intents_list_honours_created_bounds(peer: LocalStripe) -> None:
    tag = uuid.uuid4().hex
    made = create(peer, str(uuid.uuid4()), tag=tag).json()
    headers = {"Authorization": f"Bearer {peer.api_key}"}

    def listed(**bounds: int) -> list[str]:
        params = {f"created[{op}]": str(v) for op, v in bounds.items()} | {"limit": "100"}
        page = httpx.get(
            f"{peer.url}/v1/payment_intents", params=params, headers=headers, timeout=10
        )
        assert page.status_code == 200, page.text
        return [pi["id"] for pi in page.json()["data"]]

    assert made["id"] in listed(gte=made["created"], lte=made["created"])
    assert made["id"] not in listed(gt=made["created"])
    assert made["id"] not in listed(lt=made["created"])
