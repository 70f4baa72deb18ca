"""Frozen value types passed between the layers: plain ints, strings and tuples.

Nothing here does I/O. No vpp_papi or pyagentx3 object ever appears in these
types; the adapters convert at their boundary. Besides the scrape's values:
`CombinedRow` (one thread's combined-counter row as the stats reader decodes
it, `LB_COUNTER_NAMES` naming the LB ones) and `CounterState` (reduce's
memory between scrapes; `agentx_lb.state` keeps it in a file).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import accumulate, repeat
from operator import attrgetter
from typing import NamedTuple, TypeVar, overload

PROTOCOL_ANY = 255  # VIP without port: every IP protocol
PORT_ANY = 0

_PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp"}


class Encap(enum.IntEnum):
    """vppLbVipEncap; the values are the MIB's enumeration."""

    GRE4 = 1
    GRE6 = 2
    L3DSR = 3
    NAT4 = 4
    NAT6 = 5


@dataclass(frozen=True, slots=True)
class Backend:
    """One application server (AS) of a VIP, from the `#as:` block."""

    address: str  # canonical text (ipaddress' compressed form)
    buckets: int  # share of the Maglev table
    flows: int  # current sticky-table entries
    used: bool  # False when VPP prints " removed"
    weight: int | None = None  # only where the VPP release prints `weight:`

    @property
    def ip_version(self) -> int:
        return 6 if ":" in self.address else 4


@dataclass(frozen=True, slots=True)
class Vip:
    """One VIP block of `show lb vips verbose`."""

    index: int  # LB pool index: the `[N]`, also the LB stats-vector index
    address: str  # canonical text of the prefix address
    prefix_length: int  # IPv4 0..32 (never the +96 form), IPv6 0..128
    ip_version: int  # 4 or 6, of the VIP prefix
    encap: Encap
    protocol: int = PROTOCOL_ANY  # 255 = any (all-port VIP has no protocol line)
    port: int = PORT_ANY  # 0 = all ports
    src_ip_sticky: bool = False
    flow_table_length: int = 0  # `new_size`
    removed: bool = False
    backends: tuple[Backend, ...] = ()
    dscp: int | None = None  # ip4-l3dsr only
    target_port: int | None = None  # nat4/nat6 only
    # Made once per object: the parser hands the same Vip back scrape after
    # scrape while its configuration stands, and reduce and the route cache
    # ask for both on every scrape.
    prefix: str = field(init=False, compare=False, repr=False)
    identity: tuple[int, str, int, int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        prefix = f"{self.address}/{self.prefix_length}"
        object.__setattr__(self, "prefix", prefix)
        # What must stay equal for a row to keep its counters monotonic.
        object.__setattr__(self, "identity", (self.index, prefix, self.protocol, self.port))

    @property
    def name(self) -> str:
        """Operator label: `192.0.2.1/32 tcp/80`, `203.0.113.0/24 any`."""
        if self.port == PORT_ANY:
            return f"{self.prefix} any"
        proto = _PROTOCOL_NAMES.get(self.protocol, f"proto{self.protocol}")
        return f"{self.prefix} {proto}/{self.port}"


@dataclass(frozen=True, slots=True)
class LbSettings:
    """LB global configuration (`show lb`); None where VPP does not expose it."""

    ip4_src_address: str | None = None
    ip6_src_address: str | None = None
    sticky_buckets_per_core: int | None = None
    flow_timeout_s: int | None = None


@dataclass(frozen=True, slots=True)
class VipCounters:
    """Packet/byte counters of one VIP, summed over every VPP thread."""

    next_packets: int = 0  # `packet from existing sessions`
    first_packets: int = 0  # `first session packet`
    untracked_packets: int = 0  # `untracked packet`
    no_server_packets: int = 0  # `no server configured`
    # `/net/route/to` at the prefix's FIB stats_index. None = unknown (no exact
    # FIB entry for the prefix, so no stats_index): the cell is absent, never 0.
    route_packets: int | None = 0
    route_octets: int | None = 0


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """A line of VPP CLI output the lenient parser did not understand."""

    line_no: int
    line: str
    reason: str

    @property
    def problem(self) -> str:
        """The problem without the line number: one key per distinct problem."""
        return f"{self.reason}: {self.line.strip()!r}"

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.reason}: {self.line!r}"


@dataclass(frozen=True, slots=True)
class RawScrape:
    """Everything one scrape read from VPP, as plain Python values."""

    vips: tuple[Vip, ...]  # parsed VIPs, `removed` ones included (reduce drops them)
    problems: tuple[ParseProblem, ...]  # CLI lines skipped by the lenient parser
    # The four LB simple counters as read: name -> per-thread rows (a row may be
    # short right after a VIP is added). A name is absent before the first VIP.
    lb_counters: Mapping[str, Sequence[Sequence[int]]]
    # `/net/route/to`: per-thread rows of (packets, octets).
    route_to: Sequence[Sequence[tuple[int, int]]]
    # VIP prefix -> FIB stats_index (None: no exact FIB entry for the prefix).
    stats_index: Mapping[str, int | None]
    vpp_instance: str  # changes whenever VPP restarts (new stats segment)
    vpp_version: str = ""
    # Every backend's flow count, the backends of `vips` back to back (the
    # parser cuts them out of the text as one column); None: read each
    # `Backend.flows` instead.
    flows: Sequence[int] | None = None
    settings: LbSettings | None = None
    # Wall milliseconds spent per phase (`cli`, `route_lookup`, `stats`), for benchmarks.
    timings_ms: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VipRow:
    """One served row: the VIP, its monotonic counters and discontinuity time."""

    vip: Vip
    counters: VipCounters
    discontinuity_cs: int  # TimeStamp event: `agentx_lb.clock.EventClock` centiseconds


def with_flows(vip: Vip, flows: Sequence[int]) -> Vip:
    """`vip` whose backends carry `flows` (one per backend, in order); `vip` itself
    when they already do."""
    backends = vip.backends
    if all(b.flows == f for b, f in zip(backends, flows, strict=True)):
        return vip
    return replace(
        vip,
        backends=tuple(
            Backend(b.address, b.buckets, f, b.used, b.weight)
            for b, f in zip(backends, flows, strict=True)
        ),
    )


_T = TypeVar("_T")


class _ColumnRows(Sequence[_T]):
    """A Sequence of rows kept by column: each row made on access (`_row`)."""

    __slots__ = ("vips",)

    vips: Sequence[Vip]  # one per row

    def _row(self, i: int) -> _T:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.vips)

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[_T, ...]: ...

    def __getitem__(self, index: int | slice) -> _T | tuple[_T, ...]:
        if isinstance(index, slice):
            return tuple(self._row(i) for i in range(*index.indices(len(self.vips))))
        n = len(self.vips)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        return self._row(index)

    def __iter__(self) -> Iterator[_T]:
        return (self._row(i) for i in range(len(self.vips)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # unhashable, like the lists it holds

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


class Frame(_ColumnRows[VipRow]):
    """The served VIP rows, stored by column: what reduce gives the table builder.

    What changes every scrape is kept in flat columns: the six counter columns
    (VipCounters order; a route value may be None, unknown), the discontinuity
    times and every backend's flow count (`flows`, the backends of `vips` back to
    back). The configuration is `vips`, sorted by index: the parser hands back the
    same Vip objects while VPP's configuration stands, so whatever depends on
    them only (the table's static columns, the table shape) is reused by
    identity. The `Backend.flows` inside `vips` are not read: `flows` is.

    Indexing gives a `VipRow` (made on access; its Vip's backends carry their
    flows from the column), for the views, the notifier and tests.
    """

    __slots__ = ("_starts", "counters", "discontinuity_cs", "flows")

    vips: tuple[Vip, ...]

    def __init__(
        self,
        vips: tuple[Vip, ...],
        counters: Sequence[Sequence[int | None]],
        discontinuity_cs: Sequence[int],
        flows: Sequence[int],
    ) -> None:
        if len(counters) != COUNTER_COLUMNS or any(len(c) != len(vips) for c in counters):
            raise ValueError("counter columns do not match the VIPs")
        if len(discontinuity_cs) != len(vips):
            raise ValueError("discontinuity times do not match the VIPs")
        self.vips = vips
        self.counters = tuple(counters)
        self.discontinuity_cs = discontinuity_cs
        self.flows = flows
        self._starts: list[int] | None = None

    @classmethod
    def from_rows(cls, rows: Iterable[VipRow]) -> Frame:
        """The columns of `rows` (in their order)."""
        if isinstance(rows, Frame):
            return rows
        rows = tuple(rows)
        vips = tuple(r.vip for r in rows)
        counters = [r.counters for r in rows]
        return cls(
            vips,
            [[getattr(c, name) for c in counters] for name in _COUNTER_FIELDS],
            [r.discontinuity_cs for r in rows],
            [b.flows for v in vips for b in v.backends],
        )

    def backend_starts(self) -> list[int]:
        """Where each VIP's backends start in `flows` (one more at the end)."""
        if self._starts is None:
            self._starts = list(accumulate((len(v.backends) for v in self.vips), initial=0))
            if self._starts[-1] != len(self.flows):
                raise ValueError("flows do not match the VIPs' backends")
        return self._starts

    def _row(self, i: int) -> VipRow:
        starts = self.backend_starts()
        vip = with_flows(self.vips[i], self.flows[starts[i] : starts[i + 1]])
        counters = VipCounters(*(column[i] for column in self.counters))  # type: ignore[arg-type]  # LB columns are never None
        return VipRow(vip, counters, self.discontinuity_cs[i])


_COUNTER_FIELDS = (
    "next_packets",
    "first_packets",
    "untracked_packets",
    "no_server_packets",
    "route_packets",
    "route_octets",
)


@dataclass(frozen=True, slots=True)
class Health:
    """Agent and VPP health, served as the vppLbAgent scalars."""

    vpp_connected: bool = False
    vpp_version: str = ""
    vip_count: int = 0
    vip_table_last_change_cs: int = 0  # TimeStamp event (EventClock cs); 0: never
    table_age_s: int = 0
    last_scrape_duration_ms: int = 0
    scrape_failures: int = 0  # total since start (Counter64)
    consecutive_failures: int = 0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the agent serves: rows sorted by VIP index, settings and health."""

    rows: Sequence[VipRow] = ()  # a tuple, or reduce's Frame
    settings: LbSettings | None = None
    health: Health = field(default_factory=Health)
    # When the scrape the rows come from started (monotonic seconds); the agent
    # stops serving the rows once they are older than the staleness limit.
    taken_at: float = 0.0


# VPP's lb simple counters (lb.h `lb_foreach_vip_counter`), in VipCounters order.
LB_COUNTER_NAMES: tuple[str, str, str, str] = (
    "packet from existing sessions",
    "first session packet",
    "untracked packet",
    "no server configured",
)
# The served counter columns, in VipCounters order: the four LB counters,
# route packets, route octets.
COUNTER_COLUMNS = 6


class CombinedRow(Sequence[tuple[int, int]]):
    """One thread's row of a combined counter, stored as two `array('Q')` columns.

    A Sequence of `(packets, octets)` like vpp_papi's list of StatsTuple, but
    decoded in bulk; `reduce` reads the `packets` / `octets` columns directly.
    """

    __slots__ = ("octets", "packets")

    def __init__(self, packets: Sequence[int], octets: Sequence[int]) -> None:
        if len(packets) != len(octets):
            raise ValueError("packets and octets differ in length")
        self.packets = packets
        self.octets = octets

    def __len__(self) -> int:
        return len(self.packets)

    @overload
    def __getitem__(self, index: int) -> tuple[int, int]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, int]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, int] | list[tuple[int, int]]:
        if isinstance(index, slice):
            return list(zip(self.packets[index], self.octets[index], strict=True))
        return (self.packets[index], self.octets[index])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.packets, self.octets, strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CombinedRow):
            return list(self.packets) == list(other.packets) and list(self.octets) == list(
                other.octets
            )
        if isinstance(other, Sequence):
            return list(self) == [tuple(pair) for pair in other]
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # unhashable on purpose (mutable); typeshed wants a method

    def __repr__(self) -> str:
        return f"CombinedRow({list(self)!r})"


class RowState(NamedTuple):
    """What reduce remembers about one row between scrapes.

    A named tuple rather than a frozen dataclass: reduce makes one per row per
    scrape, and `RowState._make` builds them in C (a few times faster).
    """

    identity: tuple[int, str, int, int]
    offsets: tuple[int, ...]  # per column, added to VPP's raw value
    last_raw: tuple[int | None, ...]  # per column; None: never known since the last reset
    route_stats_index: int | None
    discontinuity_cs: int
    absent_since_cs: int | None = None  # None while VPP lists the VIP


class RowStates(_ColumnRows[RowState]):
    """Reduce's memory of the rows when every VIP is listed, by column.

    What the common scrape (nothing reset) changes is only the raw values, so
    it gives a RowStates that shares every other column with the last one and
    makes no object per row: `last_raw` is the six raw columns of the scrape
    (VipCounters order). Aligned with `vips` (their identities); none absent.
    Indexing gives a RowState (made on access), for the slow path, the state
    file and tests.
    """

    __slots__ = (
        "discontinuity_cs",
        "last_raw",
        "latest_cs",
        "offset_columns",
        "offsets",
        "route_indices",
        "zero_offsets",
    )

    def __init__(
        self,
        vips: Sequence[Vip],
        offsets: Sequence[tuple[int, ...]],
        last_raw: Sequence[Sequence[int | None]],
        route_indices: Sequence[int | None],
        discontinuity_cs: Sequence[int],
        *,
        offset_columns: Sequence[Sequence[int]] | None = None,
        zero_offsets: bool | None = None,
        latest_cs: int | None = None,
    ) -> None:
        self.vips = vips
        self.offsets = offsets
        self.last_raw = last_raw
        self.route_indices = route_indices
        self.discontinuity_cs = discontinuity_cs
        # Derived once, then shared by the scrapes that keep these columns.
        if offset_columns is None:
            offset_columns = list(zip(*offsets)) if offsets else [()] * COUNTER_COLUMNS
        self.offset_columns = offset_columns
        if zero_offsets is None:
            zero_offsets = offsets.count((0,) * COUNTER_COLUMNS) == len(offsets)
        self.zero_offsets = zero_offsets
        if latest_cs is None:
            latest_cs = max(discontinuity_cs, default=0)
        self.latest_cs = latest_cs

    def moved(self, last_raw: Sequence[Sequence[int | None]]) -> RowStates:
        """The same rows with other raw values (nothing else changed)."""
        return RowStates(
            self.vips,
            self.offsets,
            last_raw,
            self.route_indices,
            self.discontinuity_cs,
            offset_columns=self.offset_columns,
            zero_offsets=self.zero_offsets,
            latest_cs=self.latest_cs,
        )

    def _row(self, i: int) -> RowState:
        return RowState(
            self.vips[i].identity,
            self.offsets[i],
            tuple(column[i] for column in self.last_raw),
            self.route_indices[i],
            self.discontinuity_cs[i],
        )

    def __iter__(self) -> Iterator[RowState]:
        # All rows at once, in C (reduce's row-by-row path reads every one).
        fields = zip(
            map(_IDENTITY, self.vips),
            self.offsets,
            zip(*self.last_raw) if self.vips else (),
            self.route_indices,
            self.discontinuity_cs,
            repeat(None),
        )
        return map(_ROW_STATE, fields)


_IDENTITY = attrgetter("identity")
# A RowState from a tuple of its six fields, in C (RowState._make checks the
# length in Python; RowStates.__iter__ always gives six).
_ROW_STATE = partial(tuple.__new__, RowState)


@dataclass(frozen=True, slots=True)
class CounterState:
    """Offsets per row identity plus the VPP instance they belong to."""

    vpp_instance: str
    rows: Sequence[RowState] = ()  # a tuple, or reduce's RowStates
    # Bumped by reduce on every change but last_raw's (not saved, not compared).
    revision: int = field(default=0, compare=False)
    # Loaded from a file not written at a clean stop (not compared).
    unclean: bool = field(default=False, compare=False)
