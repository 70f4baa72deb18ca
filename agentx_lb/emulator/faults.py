"""Fault switches read by the emulator's servers on every request.

Which faults, and why: docs/vpp.md, "What the emulator reproduces".
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Faults:
    """Mutable switches; set attributes directly from a test.

    * ``handshake_hang``: read ``sockclnt_create`` and never answer.
    * ``hang``: message names that are read and never answered (e.g. ``{"cli_inband"}``).
    * ``die_on``: message names on which the connection is closed (VPP died mid-call).
    * ``bad_crc``: message names advertised with a wrong CRC in the handshake table.
    * ``lb_plugin``: False = plugin not loaded: no lb messages, ``show lb ...`` unknown.
    * ``cli_empty``: every ``cli_inband`` answers retval 0 with an empty reply.
    * ``cli_extra``: VIP index -> text inserted into that VIP's block of
      ``show lb vips verbose`` after its first line (a newer VPP printing a
      line our parser does not know); each line newline-terminated.
    * ``absent``: message names left out of the handshake's message table
      (an older or newer VPP without them).
    * ``route_miss``: VIP prefixes (``"192.0.2.1/32"``) for which
      ``ip_route_lookup`` answers "no such entry" (no exact FIB entry).
    * ``truncate``: reply names sent cut to half their length (a garbled answer).
    * ``late_every``: message name -> N: every Nth request of that name is
      answered ``late_s`` seconds late (VPP busy: the requests behind it on
      the same connection wait too, as VPP answers in order).
    """

    handshake_hang: bool = False
    hang: set[str] = field(default_factory=set)
    die_on: set[str] = field(default_factory=set)
    bad_crc: set[str] = field(default_factory=set)
    lb_plugin: bool = True
    cli_empty: bool = False
    cli_extra: dict[int, str] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)
    route_miss: set[str] = field(default_factory=set)
    truncate: set[str] = field(default_factory=set)
    late_every: dict[str, int] = field(default_factory=dict)
    late_s: float = 2.0
    _seen: dict[str, int] = field(default_factory=dict, repr=False)

    def delay_s(self, name: str) -> float:
        """How late to answer this request of `name` (0: on time)."""
        every = self.late_every.get(name)
        if not every:
            return 0.0
        seen = self._seen[name] = self._seen.get(name, 0) + 1
        return self.late_s if seen % every == 0 else 0.0
