"""An emulated VPP (lb plugin) at the socket boundary, for tests, the demo and benchmarks.

The unmodified vpp_papi client talks to it: ``VPPStats(vpp.stats_socket)``
reads a real version-2 stats segment (memfd over SCM_RIGHTS), and
``VPPApiClient(apifiles=vpp.api_files, server_address=vpp.api_socket)`` speaks
VPP's binary API (25.10 CRCs) over ``api.sock``.

Public API (``EmulatedVpp(run_dir, *, workers=2, cli_style="25.10", version="25.10-release")``):

* ``start()``/``stop()``/context manager; ``restart(keep_vips=True)`` (new memfd,
  re-bound sockets, new message ids, counters at 0).
* ``stats_socket``, ``api_socket``, ``api_dir``, ``api_files``.
* ``add_vip(prefix, protocol=, port=, encap=, new_size=, src_ip_sticky=, dscp=,
  nat_type=, target_port=) -> index``, ``del_vip(index, keep_removed=)``, ``gc()``,
  ``add_backend``, ``remove_backend``, ``set_flows``, ``add_flows_all(delta)``.
* ``traffic(vip_index, thread=, next_packets=, first_packets=, untracked_packets=,
  no_server_packets=, octets_per_packet=)``, ``traffic_all(...)`` (the same on every
  VIP, in bulk), ``set_counter(name, thread, index, value)``.
* ``cli(cmd)``, ``show_vips_verbose()``, ``route_stats_index(prefix)``.
* Faults: ``vpp.faults`` (``Faults``: handshake_hang, hang, die_on, bad_crc,
  lb_plugin, cli_empty, cli_extra, absent, route_miss), ``stats_socket_down(stale=)``,
  ``api_socket_down(stale=)``,
  ``kill()``, ``set_in_progress(1)``, ``corrupt_vector(name)``.
"""

from __future__ import annotations

from agentx_lb.emulator.faults import Faults
from agentx_lb.emulator.vpp import LB_COUNTERS, ROUTE_TO, EmulatedVpp

__all__ = ["LB_COUNTERS", "ROUTE_TO", "EmulatedVpp", "Faults"]
