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
    """

    handshake_hang: bool = False
    hang: set[str] = field(default_factory=set)
    die_on: set[str] = field(default_factory=set)
    bad_crc: set[str] = field(default_factory=set)
    lb_plugin: bool = True
    cli_empty: bool = False
