"""Restarts and faults as the unmodified vpp_papi client sees them.

What each fault must look like: docs/vpp.md ("Connecting", "VPP restarting",
"vpp_papi's stats quirks", "Failures the adapter translates").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest
from vpp_papi import VPPApiClient
from vpp_papi.vpp_stats import VPPStats

from agentx_lb.emulator import ROUTE_TO, EmulatedVpp
from vppfixtures import api_client, stats_client


def test_restart_new_memfd_old_client_reads_frozen_values(vpp: EmulatedVpp) -> None:
    i = vpp.add_vip("192.0.2.1/32")
    vpp.traffic(i, first_packets=5)
    before = os.stat(vpp.stats_socket)
    with stats_client(vpp) as old:
        boot = old["/sys/boottime"]
        vpp.restart()
        vpp.traffic(i, first_packets=2)
        # the old mapping is the dead VPP's memory: unchanged, no error
        assert old["first session packet"][:, i].sum() == 5
        assert old["/sys/boottime"] == boot
        with stats_client(vpp) as new:
            assert new["first session packet"][:, i].sum() == 2
            assert new["/sys/boottime"] > boot
    after = os.stat(vpp.stats_socket)
    assert (after.st_ino, after.st_ctime_ns) != (before.st_ino, before.st_ctime_ns)


def test_restart_without_vips_drops_lb_counters(vpp: EmulatedVpp) -> None:
    vpp.add_vip("192.0.2.1/32")
    vpp.restart(keep_vips=False)
    with stats_client(vpp) as stats:
        assert stats.ls(["^first session packet$"]) == []
    assert vpp.show_vips_verbose() == ""


def test_restart_like_startup_config_api_up_before_the_vips(vpp: EmulatedVpp) -> None:
    a = vpp.add_vip("192.0.2.1/32", protocol=6, port=80)
    b = vpp.add_vip("192.0.2.2/32", protocol=6, port=80)
    vpp.add_backend(b, "10.0.0.1")
    vpp.del_vip(a)
    c = vpp.add_vip("192.0.2.3/32")  # takes index a
    vpp.restart(lb_after_s=0.5, load_s=0.2)
    with api_client(vpp) as client:
        # The API answers while the LB is still empty, as a real VPP does.
        assert client.api.cli_inband(cmd="show lb vips verbose").reply == ""
        with stats_client(vpp) as stats:
            assert stats.ls(["^first session packet$"]) == []  # no VIP yet: no counters
    vpp.wait_restored()
    assert vpp.vip_indices() == [c, b]
    assert "10.0.0.1" in vpp.show_vips_verbose()


def test_restart_changes_message_ids_and_client_relearns(vpp: EmulatedVpp) -> None:
    vpp.add_vip("192.0.2.1/32")
    client = VPPApiClient(apifiles=vpp.api_files, server_address=vpp.api_socket, read_timeout=2)
    client.connect("test")
    try:
        old_ids = client.dump_message_table()
        vpp.restart()
        with pytest.raises(OSError):
            client.api.cli_inband(cmd="show lb vips verbose")
        client.disconnect()
        client.connect("test")
        new_ids = client.dump_message_table()
        r = client.api.cli_inband(cmd="show lb vips verbose")
    finally:
        client.disconnect()
    name = next(n for n in old_ids if n.startswith("cli_inband_"))
    assert old_ids[name] != new_ids[name]
    assert old_ids["sockclnt_create_455fb9c4"] == new_ids["sockclnt_create_455fb9c4"] == 15
    assert r.retval == 0 and "[1] 192.0.2.1/32" in r.reply


# vpp_papi's VPPStats.connect() leaks its socket when connect() raises (not ours to fix here)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_stats_socket_absent_and_stale(vpp: EmulatedVpp) -> None:
    vpp.stats_socket_down()
    with pytest.raises(FileNotFoundError):
        VPPStats(socketname=vpp.stats_socket).connect()
    vpp.stats_socket_up()
    vpp.stats_socket_down(stale=True)
    assert os.path.exists(vpp.stats_socket)
    with pytest.raises(ConnectionRefusedError):
        VPPStats(socketname=vpp.stats_socket).connect()


def test_api_socket_stale_refused(vpp: EmulatedVpp) -> None:
    vpp.kill()
    client = VPPApiClient(apifiles=vpp.api_files, server_address=vpp.api_socket, read_timeout=1)
    with pytest.raises(ConnectionRefusedError):
        client.connect("test")
    client.disconnect()


def test_handshake_never_answered(vpp: EmulatedVpp) -> None:
    vpp.faults.handshake_hang = True
    client = VPPApiClient(apifiles=vpp.api_files, server_address=vpp.api_socket, read_timeout=0.3)
    try:
        with pytest.raises(TimeoutError):
            client.connect("test")
        with pytest.raises(OSError, match="disconnect first"):
            client.connect("test")
    finally:
        client.disconnect()


def test_call_never_answered_then_connection_still_usable(vpp: EmulatedVpp) -> None:
    vpp.faults.hang = {"cli_inband"}
    with api_client(vpp) as client:
        with pytest.raises(client.VPPIOError, match="read failed"):
            client.api.cli_inband(cmd="show lb vips verbose", _timeout=0.2)
        assert client.api.control_ping().retval == 0


def test_death_mid_call(vpp: EmulatedVpp) -> None:
    vpp.faults.die_on = {"cli_inband"}
    with api_client(vpp, read_timeout=5) as client:
        with pytest.raises(client.VPPIOError, match="read failed"):
            client.api.cli_inband(cmd="show lb vips verbose")
        with pytest.raises(OSError):
            client.api.control_ping()


def test_crc_mismatch_hides_the_function(vpp: EmulatedVpp) -> None:
    vpp.faults.bad_crc = {"cli_inband"}
    with api_client(vpp) as client:
        assert not hasattr(client.api, "cli_inband")
        assert hasattr(client.api, "ip_route_lookup")
        assert client.validate_message_table({"cli_inband_f8377302": 0}) == ["cli_inband_f8377302"]


def test_lb_plugin_absent(vpp: EmulatedVpp) -> None:
    vpp.faults.lb_plugin = False
    with api_client(vpp) as client:
        assert not hasattr(client.api, "lb_vip_dump")
        r = client.api.cli_inband(cmd="show lb vips verbose")
    assert r.retval == -1
    assert "unknown input" in r.reply


def test_cli_empty(vpp: EmulatedVpp) -> None:
    vpp.add_vip("192.0.2.1/32")
    vpp.faults.cli_empty = True
    with api_client(vpp) as client:
        r = client.api.cli_inband(cmd="show lb vips verbose")
    assert (r.retval, r.reply) == (0, "")


def test_in_progress_stuck_spins_even_nonblocking(vpp: EmulatedVpp) -> None:
    vpp.add_vip("192.0.2.1/32")
    results: list[object] = []
    with stats_client(vpp) as stats:
        vpp.set_in_progress(1)

        def read() -> None:
            results.append(stats.dump([ROUTE_TO], blocking=False))

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(0.5)
        still_spinning = t.is_alive()
        vpp.set_in_progress(0)
        t.join(5)
    assert still_spinning
    assert not t.is_alive() and len(results) == 1


def test_corrupt_vector_raises_nonblocking(vpp: EmulatedVpp) -> None:
    vpp.add_vip("192.0.2.1/32")
    vpp.corrupt_vector("first session packet")
    with stats_client(vpp) as stats:
        with pytest.raises(IOError, match="overruns"):
            stats.dump(["first session packet"], blocking=False)
        assert stats.dump([ROUTE_TO], blocking=False)[ROUTE_TO]


def test_reallocation_bumps_epoch_and_client_follows(vpp: EmulatedVpp) -> None:
    with stats_client(vpp) as stats:
        vpp.add_vip("192.0.2.1/32")
        vpp.traffic(1, first_packets=1)
        assert stats["first session packet"][:, 1].sum() == 1
        epoch = stats.epoch
        vpp.traffic(1, first_packets=1)
        assert stats.epoch == epoch  # in-place increments take no lock
        for n in range(2, 60):  # past the row capacity: vectors move
            vpp.add_vip(f"192.0.2.{n}/32")
        vpp.traffic(59, thread=2, first_packets=4)
        assert stats.epoch > epoch
        col = stats["first session packet"]
        assert col[:, 1].sum() == 2 and col[:, 59].sum() == 4
        assert all(len(row) == 60 for row in col)


# vpp_papi 2.4.2 bootstrap uses the deprecated importlib.resources.open_text
@pytest.mark.filterwarnings("ignore:open_text is deprecated:DeprecationWarning")
def test_bootstrap_api_json(vpp: EmulatedVpp) -> None:
    with api_client(vpp, bootstrapapi=True) as client:
        r = client.api.cli_inband(cmd="show version")
        assert r.retval == 0
        assert hasattr(client.api, "ip_route_lookup")


@pytest.mark.parametrize("workers", [0, 1, 4])
def test_thread_rows_follow_workers(make_vpp: Callable[..., EmulatedVpp], workers: int) -> None:
    vpp = make_vpp(workers=workers)
    i = vpp.add_vip("192.0.2.1/32")
    vpp.traffic(i, thread=workers, next_packets=3)
    with stats_client(vpp) as stats:
        rows = stats["packet from existing sessions"]
        assert len(rows) == workers + 1
        assert rows[workers][i] == 3
        assert rows[:, i].sum() == 3
