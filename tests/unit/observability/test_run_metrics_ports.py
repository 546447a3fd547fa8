"""`saga run` hands worker k the port METRICS_PORT+k; the API keeps its own /metrics."""

from __future__ import annotations

from infra.supervisor import specs


def test_each_worker_child_gets_its_own_metrics_port() -> None:
    children = specs(["orchestrator", "payment"], [0, 1], api=True, metrics_port=9400)
    ports = {c.name: dict(c.env).get("METRICS_PORT") for c in children}
    assert ports == {
        "orchestrator-0": "9400",
        "orchestrator-1": "9401",
        "payment-0": "9402",
        "payment-1": "9403",
        "api": None,
    }


def test_port_zero_stays_ephemeral_and_unset_sets_nothing() -> None:
    zero = specs(["orchestrator", "tax"], [0], api=False, metrics_port=0)
    assert [dict(c.env)["METRICS_PORT"] for c in zero] == ["0", "0"]
    assert all(c.env == () for c in specs(["tax"], [0, 1], api=True))


def test_json_child_lines_are_labelled_in_place_and_others_prefixed() -> None:
    import io
    import json

    from infra.supervisor import Supervisor

    supervisor = Supervisor([], {}, say=lambda _text: None, out=io.StringIO(), json_lines=True)
    labelled = json.loads(supervisor._labelled("payment-0", '{"event": "hi", "level": "info"}'))
    assert labelled == {"process": "payment-0", "event": "hi", "level": "info"}
    assert supervisor._labelled("payment-0", "Traceback (most recent") == (
        "[payment-0] Traceback (most recent"
    )
    plain = Supervisor([], {}, say=lambda _text: None, out=io.StringIO())
    assert plain._labelled("tax-1", '{"event": "x"}') == '[tax-1] {"event": "x"}'
