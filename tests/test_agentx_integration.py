"""End to end: LbAgent behind a private snmpd, read with net-snmp's client tools."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyagentx3.pdu import PDU

from agentx_lb.agentx import LbAgent
from agentx_lb.model import VipCounters, VipRow
from agentx_lb.oids import AGENT, DEFAULT_ROOT, VIP_ENTRY, AgentScalar, format_oid, parse_oid
from agentx_lb.snmpd import PrivateSnmpd, SnmpError
from agentx_lb.table import Table, build_table
from sharedmibs import SHARED_MIBS, require_shared_mibs
from snmpfixtures import FIXTURE_INDICES, make_snapshot

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
ROOT = DEFAULT_ROOT
R = format_oid(ROOT)
V = ROOT + VIP_ENTRY
OPTS = ("-Ox", "-Ot", "-Oe")  # hex strings, raw TimeTicks, numeric enums
_LINE = re.compile(r"^(\.[\d.]+) = (?:([\w-]+): )?(.*)$")


def parse(out: str) -> list[tuple[tuple[int, ...], object]]:
    """`-On -Ox -Ot` output -> [(oid, value)], strings as bytes, numbers as int."""
    lines: list[str] = []
    for line in out.splitlines():
        if line.startswith("."):
            lines.append(line)
        elif lines:
            lines[-1] += " " + line.strip()  # hex strings wrap
    result = []
    for line in lines:
        m = _LINE.match(line)
        assert m, line
        oid, typ, text = parse_oid(m.group(1)), m.group(2), m.group(3).strip()
        if typ in ("Hex-STRING", "STRING"):
            value: object = bytes.fromhex(text) if typ == "Hex-STRING" else text.strip('"').encode()
        elif text == '""':
            value = b""
        elif typ is None and text.isdigit():
            value = int(text)  # -Ot prints TimeTicks as a bare number
        elif typ is None:
            value = text  # No Such Instance/Object messages
        else:
            value = int(text.split()[0])
        result.append((oid, value))
    return result


AGE = ROOT + AGENT + (AgentScalar.TABLE_AGE, 0)  # computed when answered


def expected(table: Table) -> list[tuple[tuple[int, ...], object]]:
    out = []
    for vb in table.varbinds:
        pdu = PDU()
        pdu.set_decode_buf(vb)
        v, _ = pdu.decode_value()
        out.append((parse_oid(v["name"]), v["data"]))
    return out


def without_age(
    cells: list[tuple[tuple[int, ...], object]],
) -> list[tuple[tuple[int, ...], object]]:
    return [(oid, None if oid == AGE else value) for oid, value in cells]


@pytest.fixture
def served(
    snmpd: PrivateSnmpd,
) -> Iterator[tuple[PrivateSnmpd, LbAgent, threading.Event, threading.Thread]]:
    agent = LbAgent(snmpd.agentx_socket, ROOT, max_age_s=math.inf)
    agent.publish(build_table(make_snapshot(), ROOT))
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not agent.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert agent.connected
    yield snmpd, agent, stop, thread
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_walk_and_bulkwalk_equal_the_table(served) -> None:
    snmpd, agent, _, _ = served
    want = without_age(expected(agent.table))
    for out in (snmpd.walk(R, options=OPTS), snmpd.bulkwalk(R, options=OPTS)):
        got = parse(out)
        assert without_age(got) == want
        oids = [o for o, _ in got]
        assert all(a < b for a, b in itertools.pairwise(oids))
        assert [o[-1] for o in oids if o[:-1] == V + (2,)] == list(FIXTURE_INDICES)
    assert agent.sessions == 1


def test_snapshot_values_through_snmpd(served) -> None:
    snmpd, _, _, _ = served
    vip = make_snapshot().rows[0].vip
    got = dict(
        parse(snmpd.get(*(format_oid(V + (c, 1)) for c in (2, 4, 5, 14, 15, 20)), options=OPTS))
    )
    assert got == {
        V + (2, 1): vip.name.encode(),
        V + (4, 1): bytes([192, 0, 2, 1]),
        V + (5, 1): 32,
        V + (14, 1): 2**64 - 1,
        V + (15, 1): 0,
        # The fixture's event at 100 cs of the event clock (1970) predates
        # snmpd's start: as a TimeStamp on snmpd's sysUpTime that is 0.
        V + (20, 1): 0,
    }


def test_missing_row_and_vanished_getnext(served) -> None:
    snmpd, agent, _, _ = served
    out = snmpd.get(format_oid(V + (2, 50)), format_oid(V + (2, 1)))
    assert "No Such Instance" in out.splitlines()[0]
    assert "192.0.2.1/32" in out.splitlines()[1]
    assert parse(snmpd.getnext(format_oid(V + (2, 50))))[0][0] == V + (2, 99)
    last = agent.table.oids[-1]
    after = parse(snmpd.getnext(format_oid(last)))[0][0]
    assert after[: len(ROOT)] != ROOT and after > last  # left our subtree


def test_bad_value_rejected_rest_served(served) -> None:
    snmpd, agent, _, _ = served
    snap = make_snapshot()
    row = snap.rows[1]
    bad = dataclasses.replace(row, counters=dataclasses.replace(row.counters, next_packets=-1))
    agent.publish(
        build_table(dataclasses.replace(snap, rows=(snap.rows[0], bad, *snap.rows[2:])), ROOT)
    )
    out = snmpd.get(format_oid(V + (14, 2)), format_oid(V + (15, 2)), options=OPTS)
    assert "No Such Instance" in out.splitlines()[0]
    assert parse(out.splitlines()[1])[0][1] == 2
    assert len(parse(snmpd.bulkwalk(R, options=OPTS))) == len(agent.table)


def test_large_get_and_1000_vip_bulkwalk(served) -> None:
    snmpd, agent, _, _ = served
    oids = [format_oid(V + (c, i)) for i in FIXTURE_INDICES[:3] for c in range(2, 22)]
    got = parse(snmpd.get(*oids, options=OPTS))
    assert len(got) == 60
    assert sum(1 for _, v in got if isinstance(v, str)) == 3  # column 21 does not exist
    agent.publish(build_table(make_snapshot(indices=range(1, 1001), backends_per_vip=1), ROOT))
    fast = agent.fast_answers
    walked = parse(snmpd.bulkwalk(format_oid(V), options=OPTS))
    assert len(walked) == 19 * 1000 - 2
    assert agent.sessions == 1  # no reconnect
    # snmpd's GetNext for each repetition starts at our last answer: the cursor
    # answers all but the first of each bulk request's repetitions at least.
    assert agent.fast_answers - fast >= len(walked) * 24 // 25


def test_publish_mid_walk_each_pdu_sees_one_table(served) -> None:
    snmpd, agent, _, _ = served
    with _flipping(agent, _variant(1000), _variant(2000)):
        oids = [format_oid(V + (14, i)) for i in FIXTURE_INDICES]  # next = base + index
        for _ in range(20):
            values = [v for _, v in parse(snmpd.get(*oids))]
            bases = {v - i for v, i in zip(values, FIXTURE_INDICES)}
            assert len(bases) == 1 and bases <= {1000, 2000}


@contextlib.contextmanager
def _flipping(agent: LbAgent, a: Table, b: Table) -> Iterator[list[int]]:
    """Publish `a` and `b` alternately, as fast as possible, inside the block;
    yields the publish count so far (one-element list)."""
    done, flips = threading.Event(), [0]

    def flip() -> None:
        while not done.is_set():
            agent.publish(a)
            agent.publish(b)
            flips[0] += 2

    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    try:
        yield flips
    finally:
        done.set()
        flipper.join(5)


def _variant(base: int) -> Table:
    """The fixture table with next = base + index and untracked = 2 * base + index."""
    snap = make_snapshot()

    def counters(r: VipRow) -> VipCounters:
        i = r.vip.index
        return dataclasses.replace(
            r.counters, next_packets=base + i, untracked_packets=2 * base + i
        )

    rows = tuple(dataclasses.replace(r, counters=counters(r)) for r in snap.rows)
    return build_table(dataclasses.replace(snap, rows=rows), ROOT)


def test_publish_mid_walk_each_walk_sees_one_table(served) -> None:
    """Tables published all through a walk (thousands per walk): every walk,
    snmpwalk (GetNext) and snmpbulkwalk alike, comes from one of them, all
    columns of every row included."""
    snmpd, agent, _, _ = served
    with _flipping(agent, _variant(1000), _variant(2000)) as flips:
        for k in range(8):
            before = flips[0]
            if k % 2:
                out = snmpd.bulkwalk(format_oid(V), reps=3, options=OPTS)
            else:
                out = snmpd.walk(format_oid(V), options=OPTS)
            assert flips[0] - before > 10  # many publishes during the walk
            bases = set()
            for oid, value in parse(out):
                col, index = oid[len(V)], oid[len(V) + 1]
                if col == 14:
                    assert isinstance(value, int)
                    bases.add(value - index)
                elif col == 16:
                    assert isinstance(value, int)
                    bases.add((value - index) // 2)
            assert len(bases) == 1 and bases <= {1000, 2000}, bases


def test_snmptable_during_publishes_is_one_scrape(served) -> None:
    """snmptable -CB asks a row per request (one range per column): its whole
    table comes from one scrape while tables are being published. With GETBULK
    (its default) it walks column by column, each from its column's OID: each
    column is one scrape (a new walk starts on the newest table)."""
    require_shared_mibs()
    snmpd, agent, _, _ = served
    env = {k: v for k, v in os.environ.items() if k not in ("MIBS", "MIBDIRS")}
    with _flipping(agent, _variant(1000), _variant(2000)):
        for mode in (("-CB",), ("-Cr", "2")):  # GETNEXT rows, GETBULK columns
            proc = subprocess.run(
                ["snmptable", "-v2c", "-c", "public", "-M", f"+{REPO / 'mibs'}:{SHARED_MIBS}",
                 "-m", "+IPNG-VPP-LB-MIB", "-Cf", "|", "-Ci", "-OU", *mode,
                 snmpd.address, "IPNG-VPP-LB-MIB::vppLbVipTable"],
                capture_output=True, text=True, timeout=60, check=False, env=env,
            )  # fmt: skip
            assert proc.returncode == 0 and not proc.stderr, proc.stderr
            lines = [line.split("|") for line in proc.stdout.splitlines() if line.strip()][1:]
            header = [c.strip() for c in lines[0]]
            nxt = header.index("vppLbVipNextPackets")
            untracked = header.index("vppLbVipUntrackedPackets")
            next_bases = {int(cells[nxt]) - int(cells[0]) for cells in lines[1:]}
            untracked_bases = {(int(cells[untracked]) - int(cells[0])) // 2 for cells in lines[1:]}
            assert len(lines) - 1 == len(FIXTURE_INDICES)
            assert len(next_bases) == len(untracked_bases) == 1, (mode, next_bases, untracked_bases)
            if mode == ("-CB",):
                assert next_bases == untracked_bases, (next_bases, untracked_bases)


def test_snmpd_restart_and_stop_while_down(served) -> None:
    snmpd, agent, stop, thread = served
    snmpd.kill()
    snmpd.start()
    deadline = time.monotonic() + 3.0  # the agent must be back within 3 s of snmpd's return
    while True:
        try:
            got = parse(snmpd.bulkwalk(format_oid(V + (2,))))
            break
        except SnmpError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    if len(got) != len(FIXTURE_INDICES):  # snmpd answered before the agent re-registered
        while len(got) != len(FIXTURE_INDICES):
            assert time.monotonic() < deadline
            time.sleep(0.1)
            got = parse(snmpd.bulkwalk(format_oid(V + (2,))))
    assert agent.sessions == 2
    snmpd.stop()
    time.sleep(0.5)
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
