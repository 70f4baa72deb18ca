"""The emulator's .api.json files: 25.10 CRCs recomputed from the field lists, dumps."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from agentx_lb.emulator import EmulatedVpp, apigen
from vppfixtures import api_client


def test_crcs_recomputed_from_field_lists_match_vpp_25_10() -> None:
    assert apigen.check() == {}
    computed = {
        name: apigen.message_crc(fields)
        for spec in apigen.MODULES.values()
        for name, fields in spec["messages"]
    }
    assert computed["cli_inband"] == 0xF8377302
    assert computed["ip_route_lookup_reply"] == 0x5D8FEBCB
    assert computed["lb_vip_details"] == 0x1329EC9B


def test_shipped_json_files_are_the_generator_output() -> None:
    for module in apigen.MODULES:
        path = Path(apigen.API_DIR) / f"{module}.api.json"
        assert json.loads(path.read_text()) == json.loads(apigen.render(module)), module


def test_every_needed_function_is_registered(vpp: EmulatedVpp) -> None:
    with api_client(vpp) as client:
        for name in (
            "cli_inband",
            "ip_route_lookup",
            "control_ping",
            "show_version",
            "lb_vip_dump",
            "lb_as_dump",
            "get_api_json",
        ):
            assert hasattr(client.api, name), name
        table = client.dump_message_table()
    assert table["sockclnt_create_455fb9c4"] == 15
    assert table["sockclnt_create_reply_35166268"] == 16
    assert "lb_vip_dump_56110cb7" in table


def test_lb_dumps_reproduce_the_25_10_bugs(vpp: EmulatedVpp) -> None:
    i = vpp.add_vip("192.0.2.1/32", protocol=6, port=80, new_size=1024)
    vpp.add_backend(i, "10.0.0.2")
    vpp.add_vip("2001:db8::1/128", encap="gre6", protocol=17, port=53)
    with api_client(vpp) as client:
        vips = client.api.lb_vip_dump(_no_type_conversion=True)
        all_as = client.api.lb_as_dump(_no_type_conversion=True)
        one_as = client.api.lb_as_dump(
            pfx="192.0.2.1/32", protocol=6, port=80, _no_type_conversion=True
        )
    assert [v.vip.pfx.len for v in vips] == [128, 128]  # IPv4 length sent as 32 + 96
    assert all(v.vip.protocol == 0 and v.flow_table_length == 0 for v in vips)
    assert vips[0].encap == 3  # internal IP4_GRE4, decodes as NAT4
    assert len(all_as) == 1 and all_as[0].flags == 1
    assert one_as == []


def test_route_replies_from_a_template_are_what_vpp_papi_packs(vpp: EmulatedVpp) -> None:
    """Each `ip_route_lookup_reply` is a template with its prefix and stats_index
    written in: byte for byte what vpp_papi packs for that answer."""
    msg = vpp._codec.messages["ip_route_lookup_reply"]
    answers = [
        None,
        *(
            (ipaddress.ip_network(text), stats_index)
            for text, stats_index in (
                ("192.0.2.1/32", 17),
                ("198.51.100.0/24", 0xFFFFFFFE),
                ("0.0.0.0/0", 0),
                ("2001:db8::1/128", 5),
                ("2001:db8:ffff:ffff::/64", 123_456),
                ("::/0", 1),
                ("10.0.0.7/32", 50_003),  # after a template of its kind was made
            )
        ),
    ]
    for found in answers:
        fields = {"_vl_msg_id": 0, "context": 0, **vpp._route_lookup_fields(found)}
        assert vpp.packed_route_reply(found) == msg.pack(fields), found
