"""Fault switches read by the emulator's servers on every request (vpp-facts §6)."""

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
