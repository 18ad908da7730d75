"""Where each call goes: the canary's share between revisions, and any replica within one (pure)."""

from __future__ import annotations

from collections import Counter

from serving.traffic import Route, Upstream

A = (Upstream("http://127.0.0.1:1", 1), Upstream("http://127.0.0.1:2", 1))
B = (Upstream("http://127.0.0.1:3", 2),)


def test_the_canary_takes_its_share_and_the_replicas_of_a_revision_split_the_rest():
    route = Route(service_pk=1, primary=A, canary=B, canary_percent=20)
    seen = Counter(route.choose(draw=draw / 10).base for draw in range(1000))
    assert seen["http://127.0.0.1:3"] == 200  # draws below 20
    assert seen["http://127.0.0.1:1"] + seen["http://127.0.0.1:2"] == 800
    assert seen["http://127.0.0.1:1"] > 0 and seen["http://127.0.0.1:2"] > 0


def test_a_route_with_one_side_sends_everything_there():
    assert Route(1, primary=(), canary=B, canary_percent=5).choose(draw=99).revision == 2
    assert Route(1, primary=B, canary=(), canary_percent=0).choose(draw=0).revision == 2
    assert {Route(1, primary=A, canary=(), canary_percent=0).choose().base for _ in range(200)} == {
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
    }
