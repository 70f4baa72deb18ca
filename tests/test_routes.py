"""RouteCache: which VIP prefixes need an ip_route_lookup, scrape after scrape."""

from __future__ import annotations

import random

from agentx_lb.vpp.routes import RouteCache


def _cache() -> RouteCache:
    cache = RouteCache(100.0, rng=random.Random(7))
    cache.use_instance("vpp-1")
    return cache


def test_unknown_prefixes_first_then_each_refresh_once_in_its_period() -> None:
    cache = _cache()
    assert cache.due({"b/32", "a/32"}, 0.0) == ["a/32", "b/32"]
    cache.resolved({"a/32": 5, "b/32": None}, 0.0)
    assert cache.view() == {"a/32": 5, "b/32": None}
    assert cache.due({"a/32", "b/32"}, 49.9) == []  # not before half the period
    asked = []
    for t in range(50, 101):
        due = cache.due({"a/32", "b/32"}, float(t))
        cache.resolved(dict.fromkeys(due, 5), float(t))
        asked += due
    assert sorted(asked) == ["a/32", "b/32"]  # each once, somewhere in [50, 100]


def test_a_refresh_without_an_answer_is_asked_again_until_answered() -> None:
    cache = _cache()
    cache.due({"a/32"}, 0.0)
    cache.resolved({"a/32": 1}, 0.0)
    assert cache.due({"a/32"}, 100.0) == ["a/32"]
    cache.resolved({}, 100.0)  # the lookup got no answer
    assert cache.due({"a/32"}, 105.0) == ["a/32"]
    cache.resolved({"a/32": 2}, 105.0)
    assert cache.due({"a/32"}, 106.0) == []
    assert cache.view() == {"a/32": 2}


def test_a_prefix_no_vip_uses_is_dropped_and_another_vpp_forgets_all() -> None:
    cache = _cache()
    cache.due({"a/32", "b/32"}, 0.0)
    cache.resolved({"a/32": 1, "b/32": 2}, 0.0)
    assert cache.due({"a/32"}, 1.0) == []
    assert cache.view() == {"a/32": 1}
    assert cache.due({"a/32"}, 200.0) == ["a/32"]  # b's refresh is not asked for
    cache.use_instance("vpp-2")
    assert cache.view() == {}
    assert cache.due({"a/32"}, 201.0) == ["a/32"]
