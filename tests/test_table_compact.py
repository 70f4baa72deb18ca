"""table.py: the column-segment layout, lookups against a brute force, incremental builds."""

from __future__ import annotations

import dataclasses
import random
import struct
from bisect import bisect_left, bisect_right

from agentx_lb.model import Backend
from agentx_lb.oids import DEFAULT_ROOT, VIP_ENTRY
from agentx_lb.table import Table, _Memo, build_table, pack_oid
from snmpfixtures import make_snapshot

ROOT = DEFAULT_ROOT
V = ROOT + VIP_ENTRY


def _cells(t: Table) -> list[tuple[tuple[int, ...], bytes]]:
    return list(zip(t.oids, t.varbinds))


def test_search_matches_brute_force() -> None:
    t = build_table(make_snapshot(indices=tuple(range(1, 40)), backends_per_vip=3), ROOT)
    keys = [t.key(i) for i in range(len(t))]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    rng = random.Random(7)
    probes = [b"", b"\xff" * 40]
    for k in keys:
        probes += [k, k[:-4], k[:4], k + b"\0\0\0\0", k[:-1] + bytes([k[-1] ^ 1])]
        subs = list(struct.unpack(f"!{len(k) // 4}I", k))
        subs[rng.randrange(len(subs))] += rng.choice((-1, 1))
        probes.append(struct.pack(f"!{len(subs)}I", *(max(s, 0) for s in subs)))
    for p in probes:
        assert t.search(p, True) == bisect_left(keys, p), p
        assert t.search(p, False) == bisect_right(keys, p), p
        assert t.locate(t.root_key + p, True) == bisect_left(keys, p)
    assert t.locate(pack_oid(ROOT[:-1]), True) == 0
    assert t.locate(pack_oid(ROOT[:-1] + (ROOT[-1] + 1,)), True) == len(t)


def test_layout_is_per_column_not_per_cell() -> None:
    small = build_table(make_snapshot(indices=(1, 2)), ROOT)
    big = build_table(make_snapshot(indices=tuple(range(1, 2001)), backends_per_vip=8), ROOT)
    assert len(big) > 100_000
    # one segment per served scalar and column, whatever the number of rows
    assert len(big._segs) == len(small._segs)


def _changed(snap, i: int, **vip_fields):
    rows = list(snap.rows)
    rows[i] = dataclasses.replace(rows[i], vip=dataclasses.replace(rows[i].vip, **vip_fields))
    return dataclasses.replace(snap, rows=tuple(rows))


def test_incremental_build_equals_fresh_build() -> None:
    base = make_snapshot(indices=tuple(range(1, 30)), backends_per_vip=3)
    v3 = base.rows[3].vip
    steps = [
        base,
        base,  # nothing changed: everything reusable
        dataclasses.replace(  # counters only
            base, rows=tuple(dataclasses.replace(r, discontinuity_cs=9) for r in base.rows)
        ),
        _changed(base, 3, backends=v3.backends[:1]),  # a backend gone
        _changed(base, 3, backends=(*v3.backends, Backend("10.9.9.9", 1, 2, True))),
        _changed(base, 3, backends=(*v3.backends, v3.backends[0])),  # duplicate backend
        _changed(base, 3, backends=(Backend("not an ip", 1, 2, True),)),  # bad backend
        _changed(base, 3, port=443),  # the VIP name of the VIP and its backends change
        _changed(base, 3, address="192.0.2.77"),
        _changed(base, 3, prefix_length=999),  # dropped cell
        dataclasses.replace(base, rows=base.rows[:-1]),  # a row gone
        dataclasses.replace(base, rows=base.rows[1:]),
        base,
    ]
    prev = None
    for k, snap in enumerate(steps):
        fresh = build_table(snap, ROOT)
        inc = build_table(snap, ROOT, prev)
        assert _cells(inc) == _cells(fresh), k
        assert inc.dropped == fresh.dropped, k
        prev = inc


def _memo(table: Table) -> _Memo:
    """What `table` keeps for the next build (Table types it `object`)."""
    memo = table._memo
    assert isinstance(memo, _Memo)
    return memo


def test_incremental_build_shares_unchanged_columns() -> None:
    snap = make_snapshot(indices=tuple(range(1, 30)), backends_per_vip=3)
    first = build_table(snap, ROOT)
    again = build_table(snap, ROOT, first)
    assert _memo(again).name_seg is _memo(first).name_seg
    assert _memo(again).b_rows is _memo(first).b_rows
    assert _memo(again).b_name_seg is _memo(first).b_name_seg
    moved = build_table(_changed(snap, 0, port=8080), ROOT, again)
    assert _memo(moved).name_seg is not _memo(again).name_seg
    assert moved.get(V + (2, snap.rows[0].vip.index)) != again.get(V + (2, snap.rows[0].vip.index))


def test_previous_table_with_other_root_is_ignored() -> None:
    snap = make_snapshot()
    other = build_table(snap, (1, 3, 6, 1, 4, 1, 99))
    assert _cells(build_table(snap, ROOT, other)) == _cells(build_table(snap, ROOT))
    assert _cells(build_table(snap, ROOT, Table.empty(ROOT))) == _cells(build_table(snap, ROOT))
