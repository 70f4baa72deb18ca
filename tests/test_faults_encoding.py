"""Bad input at the SNMP encoding: `build_table` with arbitrary values never raises
and never serves a value outside its type's (or the MIB column's) range.

Every value that reaches an encoding comes from a `Snapshot`; here each field
is drawn from arbitrary ints (negative, huge, bools), arbitrary text (lone
surrogates, very long) or None. Each served varbind is decoded back with
pyagentx3's decoder and checked against its SNMP type and its column's SYNTAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyagentx3.pdu import PDU

from agentx_lb.model import Backend, Health, LbSettings, Snapshot, Vip, VipCounters, VipRow
from agentx_lb.oids import (
    AGENT,
    BACKEND_ENTRY,
    DEFAULT_ROOT,
    VIP_ENTRY,
    AgentScalar,
    BackendColumn,
    SnmpType,
    VipColumn,
    format_oid,
    parse_oid,
)
from agentx_lb.table import build_table

ROOT = DEFAULT_ROOT

_int = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63, 2**64 - 1, 2**64, -1]),
    st.booleans(),
)
_text = st.one_of(st.text(max_size=40), st.text(min_size=250, max_size=300), st.just("\ud800"))
_addr = st.one_of(
    st.ip_addresses().map(str),
    _text,
    st.sampled_from(["10.0.0.1", "2001:db8::1", "::ffff:1.2.3.4"]),
)
_maybe_int = st.one_of(st.none(), _int)
_anything = st.one_of(_int, _text, st.none())

_backend = st.builds(
    Backend, address=_addr, buckets=_int, flows=_int, used=st.booleans(), weight=_maybe_int
)
_vip = st.builds(
    Vip,
    index=_int,
    address=_addr,
    prefix_length=_int,
    ip_version=st.one_of(st.sampled_from([4, 6]), _int),
    encap=st.one_of(st.integers(min_value=1, max_value=5), _int),
    protocol=_int,
    port=_int,
    src_ip_sticky=st.booleans(),
    flow_table_length=_int,
    removed=st.booleans(),
    backends=st.lists(_backend, max_size=3).map(tuple),
)
_counters = st.builds(
    VipCounters,
    next_packets=_int,
    first_packets=_int,
    untracked_packets=_int,
    no_server_packets=_int,
    route_packets=_maybe_int,
    route_octets=_maybe_int,
)
_row = st.builds(VipRow, vip=_vip, counters=_counters, discontinuity_cs=_int)
_health = st.builds(
    Health,
    vpp_connected=st.booleans(),
    vpp_version=_anything,
    vip_count=_int,
    vip_table_last_change_cs=_int,
    table_age_s=_int,
    last_scrape_duration_ms=_int,
    scrape_failures=_int,
    consecutive_failures=_int,
    last_error=_anything,
)
_settings = st.one_of(
    st.none(),
    st.builds(
        LbSettings,
        ip4_src_address=st.one_of(st.none(), _addr),
        ip6_src_address=st.one_of(st.none(), _addr),
        sticky_buckets_per_core=_maybe_int,
        flow_timeout_s=_maybe_int,
    ),
)
_snapshot = st.builds(
    Snapshot, rows=st.lists(_row, max_size=4).map(tuple), settings=_settings, health=_health
)

# pyagentx3 type codes -> range of the SNMP type.
_RANGES = {
    SnmpType.INTEGER: (-(2**31), 2**31 - 1),
    SnmpType.GAUGE32: (0, 2**32 - 1),
    SnmpType.TIMETICKS: (0, 2**32 - 1),
    SnmpType.COUNTER64: (0, 2**64 - 1),
}
# MIB SYNTAX ranges narrower than the base type.
_COLUMN_RANGES: dict[tuple[int, ...], tuple[int, int]] = {
    VIP_ENTRY + (VipColumn.ADDRESS_TYPE,): (1, 2),
    VIP_ENTRY + (VipColumn.PREFIX_LENGTH,): (0, 128),
    VIP_ENTRY + (VipColumn.PROTOCOL,): (0, 255),
    VIP_ENTRY + (VipColumn.PORT,): (0, 65535),
    VIP_ENTRY + (VipColumn.ENCAP,): (1, 5),
    VIP_ENTRY + (VipColumn.SRC_IP_STICKY,): (1, 2),
    VIP_ENTRY + (VipColumn.OPER_STATUS,): (1, 2),
    BACKEND_ENTRY + (BackendColumn.STATE,): (1, 2),
    BACKEND_ENTRY + (BackendColumn.WEIGHT,): (0, 100),
    AGENT + (AgentScalar.VPP_CONNECTED,): (1, 2),
}


def _decode(vb: bytes) -> dict[str, Any]:
    pdu = PDU()
    pdu.set_decode_buf(vb)
    value, _ = pdu.decode_value()
    return value


def _type_of(rel: tuple[int, ...]) -> SnmpType:
    # Lookups by value: mypy takes the members' __new__ (sub_id, mib_name,
    # snmp_type) for the call's signature, hence the call-arg ignores.
    if rel[: len(AGENT)] == AGENT:
        return AgentScalar(rel[len(AGENT)]).snmp_type  # type: ignore[call-arg]
    if rel[: len(VIP_ENTRY)] == VIP_ENTRY:
        return VipColumn(rel[len(VIP_ENTRY)]).snmp_type  # type: ignore[call-arg]
    assert rel[: len(BACKEND_ENTRY)] == BACKEND_ENTRY, rel
    return BackendColumn(rel[len(BACKEND_ENTRY)]).snmp_type  # type: ignore[call-arg]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_snapshot)
def test_build_table_never_raises_never_serves_out_of_range(snapshot: Snapshot) -> None:
    table = build_table(snapshot, ROOT)  # must not raise, whatever the values
    oids = list(table.oids)
    assert oids == sorted(oids) and len(set(oids)) == len(oids)
    for oid, vb in zip(oids, table.varbinds):
        assert oid[: len(ROOT)] == ROOT
        rel = oid[len(ROOT) :]
        value = _decode(vb)
        assert parse_oid(value["name"]) == oid
        want = _type_of(rel)
        assert value["type"] == want, (format_oid(rel), value)
        data = value["data"]
        if want == SnmpType.OCTET_STRING:
            assert isinstance(data, (bytes, str)) and len(data) <= 65535
            if rel[: len(VIP_ENTRY) + 1] == VIP_ENTRY + (VipColumn.ADDRESS,):
                assert len(data) in (4, 16)
            continue
        if want == SnmpType.INTEGER and type(data) is int and data > 2**31 - 1:
            data -= 2**32  # pyagentx3 decodes INTEGER as unsigned 32-bit
        lo, hi = _RANGES[want]
        assert type(data) is int and lo <= data <= hi, (format_oid(rel), data)
        narrow = _COLUMN_RANGES.get(rel[:-1] if rel[: len(AGENT)] == AGENT else rel[:4])
        if narrow is not None:
            assert narrow[0] <= data <= narrow[1], (format_oid(rel), data)
    # the health scalars are always there, whatever else was dropped
    served = {oid[len(ROOT) :] for oid in oids}
    assert AGENT + (AgentScalar.VPP_CONNECTED, 0) in served


@given(_snapshot)
@settings(max_examples=50, deadline=None)
def test_good_rows_survive_a_bad_neighbour(snapshot: Snapshot) -> None:
    """One row full of garbage never takes a valid row's cells with it."""
    good = VipRow(
        vip=Vip(index=7, address="192.0.2.7", prefix_length=32, ip_version=4, encap=1,  # type: ignore[arg-type]  # a plain int encap
                protocol=6, port=80, backends=(Backend("10.0.0.1", 1024, 3, True),)),
        counters=VipCounters(next_packets=5),
        discontinuity_cs=0,
    )  # fmt: skip
    rows = tuple(r for r in snapshot.rows if r.vip.index != 7) + (good,)
    table = build_table(dataclasses.replace(snapshot, rows=rows), ROOT)
    served = {oid[len(ROOT) :] for oid in table.oids}
    for col in (VipColumn.NAME, VipColumn.NEXT_PACKETS, VipColumn.PORT, VipColumn.ENCAP):
        assert VIP_ENTRY + (col, 7) in served
