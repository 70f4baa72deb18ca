"""Generate the emulator's ``.api.json`` files and their message CRCs.

The definitions below are written from the documented VPP 25.10 field lists
(docs/vpp.md, "Messages used"); the CRC algorithm follows vppapigen: a message CRC is
``crc32(str(fields))`` over the fields without ``_vl_msg_id``, then every
``vl_api_X_t`` field folds in its type's CRC, recursively.  ``EXPECTED_CRCS``
holds the 25.10 values; ``check()`` proves the definitions reproduce them, so
the unmodified vpp_papi client registers every function.

Run ``python -m agentx_lb.emulator.apigen`` to rewrite ``api/*.api.json``.
"""

from __future__ import annotations

import binascii
import json
from pathlib import Path
from typing import Any

API_DIR = Path(__file__).resolve().parent / "api"

# A field: (type, name) | (type, name, length) | (type, name, 0, lengthfield);
# an optional trailing dict holds options such as {"default": 255} (not in CRCs).
Field = tuple[Any, ...]

# ---------------------------------------------------------------- types ----
# kind, payload; enums carry (members, enumtype)
TYPES: dict[str, tuple[str, Any]] = {
    # memclnt
    "message_table_entry": ("type", [("u16", "index"), ("string", "name", 64)]),
    "module_version": (
        "type",
        [("u32", "major"), ("u32", "minor"), ("u32", "patch"), ("string", "name", 64)],
    ),
    # ip_types
    "ip4_address": ("alias", {"type": "u8", "length": 4}),
    "ip6_address": ("alias", {"type": "u8", "length": 16}),
    "address_family": ("enum", ([("ADDRESS_IP4", 0), ("ADDRESS_IP6", 1)], "u8")),
    "ip_proto": (
        "enum",
        (
            [
                ("IP_API_PROTO_HOPOPT", 0),
                ("IP_API_PROTO_ICMP", 1),
                ("IP_API_PROTO_IGMP", 2),
                ("IP_API_PROTO_TCP", 6),
                ("IP_API_PROTO_UDP", 17),
                ("IP_API_PROTO_GRE", 47),
                ("IP_API_PROTO_ESP", 50),
                ("IP_API_PROTO_AH", 51),
                ("IP_API_PROTO_ICMP6", 58),
                ("IP_API_PROTO_EIGRP", 88),
                ("IP_API_PROTO_OSPF", 89),
                ("IP_API_PROTO_SCTP", 132),
                ("IP_API_PROTO_RESERVED", 255),
            ],
            "u8",
        ),
    ),
    "ip_dscp": (
        "enum",
        (
            [
                ("IP_API_DSCP_CS0", 0),
                ("IP_API_DSCP_CS1", 8),
                ("IP_API_DSCP_AF11", 10),
                ("IP_API_DSCP_AF12", 12),
                ("IP_API_DSCP_AF13", 14),
                ("IP_API_DSCP_CS2", 16),
                ("IP_API_DSCP_AF21", 18),
                ("IP_API_DSCP_AF22", 20),
                ("IP_API_DSCP_AF23", 22),
                ("IP_API_DSCP_CS3", 24),
                ("IP_API_DSCP_AF31", 26),
                ("IP_API_DSCP_AF32", 28),
                ("IP_API_DSCP_AF33", 30),
                ("IP_API_DSCP_CS4", 32),
                ("IP_API_DSCP_AF41", 34),
                ("IP_API_DSCP_AF42", 36),
                ("IP_API_DSCP_AF43", 38),
                ("IP_API_DSCP_CS5", 40),
                ("IP_API_DSCP_EF", 46),
                ("IP_API_DSCP_CS6", 48),
                ("IP_API_DSCP_CS7", 50),
            ],
            "u8",
        ),
    ),
    "address_union": (
        "union",
        [("vl_api_ip4_address_t", "ip4"), ("vl_api_ip6_address_t", "ip6")],
    ),
    "address": (
        "type",
        [("vl_api_address_family_t", "af"), ("vl_api_address_union_t", "un")],
    ),
    "prefix": ("type", [("vl_api_address_t", "address"), ("u8", "len")]),
    "address_with_prefix": ("alias", {"type": "vl_api_prefix_t"}),
    "prefix_matcher": ("type", [("u8", "le"), ("u8", "ge")]),
    # fib_types
    "fib_path_nh_proto": (
        "enum",
        (
            [
                ("FIB_API_PATH_NH_PROTO_IP4", 0),
                ("FIB_API_PATH_NH_PROTO_IP6", 1),
                ("FIB_API_PATH_NH_PROTO_MPLS", 2),
                ("FIB_API_PATH_NH_PROTO_ETHERNET", 3),
                ("FIB_API_PATH_NH_PROTO_BIER", 4),
            ],
            "u32",
        ),
    ),
    "fib_path_flags": (
        "enum",
        (
            [
                ("FIB_API_PATH_FLAG_NONE", 0),
                ("FIB_API_PATH_FLAG_RESOLVE_VIA_ATTACHED", 1),
                ("FIB_API_PATH_FLAG_RESOLVE_VIA_HOST", 2),
                ("FIB_API_PATH_FLAG_POP_PW_CW", 4),
            ],
            "u32",
        ),
    ),
    "fib_path_type": (
        "enum",
        (
            [
                ("FIB_API_PATH_TYPE_NORMAL", 0),
                ("FIB_API_PATH_TYPE_LOCAL", 1),
                ("FIB_API_PATH_TYPE_DROP", 2),
                ("FIB_API_PATH_TYPE_UDP_ENCAP", 3),
                ("FIB_API_PATH_TYPE_BIER_IMP", 4),
                ("FIB_API_PATH_TYPE_ICMP_UNREACH", 5),
                ("FIB_API_PATH_TYPE_ICMP_PROHIBIT", 6),
                ("FIB_API_PATH_TYPE_SOURCE_LOOKUP", 7),
                ("FIB_API_PATH_TYPE_DVR", 8),
                ("FIB_API_PATH_TYPE_INTERFACE_RX", 9),
                ("FIB_API_PATH_TYPE_CLASSIFY", 10),
            ],
            "u32",
        ),
    ),
    "fib_mpls_label": (
        "type",
        [("u8", "is_uniform"), ("u32", "label"), ("u8", "ttl"), ("u8", "exp")],
    ),
    "fib_path_nh": (
        "type",
        [
            ("vl_api_address_union_t", "address"),
            ("u32", "via_label"),
            ("u32", "obj_id"),
            ("u32", "classify_table_index"),
        ],
    ),
    "fib_path": (
        "type",
        [
            ("u32", "sw_if_index"),
            ("u32", "table_id"),
            ("u32", "rpf_id"),
            ("u8", "weight"),
            ("u8", "preference"),
            ("vl_api_fib_path_type_t", "type"),
            ("vl_api_fib_path_flags_t", "flags"),
            ("vl_api_fib_path_nh_proto_t", "proto"),
            ("vl_api_fib_path_nh_t", "nh"),
            ("u8", "n_labels"),
            ("vl_api_fib_mpls_label_t", "label_stack", 16),
        ],
    ),
    # ip
    "ip_route": (
        "type",
        [
            ("u32", "table_id"),
            ("u32", "stats_index"),
            ("vl_api_prefix_t", "prefix"),
            ("u8", "n_paths"),
            ("vl_api_fib_path_t", "paths", 0, "n_paths"),
        ],
    ),
    # lb_types
    "lb_srv_type": (
        "enum",
        (
            [
                ("LB_API_SRV_TYPE_CLUSTERIP", 0),
                ("LB_API_SRV_TYPE_NODEPORT", 1),
                ("LB_API_SRV_N_TYPES", 2),
            ],
            "u32",
        ),
    ),
    "lb_encap_type": (
        "enum",
        (
            [
                ("LB_API_ENCAP_TYPE_GRE4", 0),
                ("LB_API_ENCAP_TYPE_GRE6", 1),
                ("LB_API_ENCAP_TYPE_L3DSR", 2),
                ("LB_API_ENCAP_TYPE_NAT4", 3),
                ("LB_API_ENCAP_TYPE_NAT6", 4),
                ("LB_API_ENCAP_N_TYPES", 5),
            ],
            "u32",
        ),
    ),
    "lb_vip": (
        "type",
        [
            ("vl_api_address_with_prefix_t", "pfx"),
            ("vl_api_ip_proto_t", "protocol"),
            ("u16", "port"),
        ],
    ),
}

# ------------------------------------------------------------- messages ----
REQ = [("u32", "client_index"), ("u32", "context")]
REPLY = [("u32", "context"), ("i32", "retval")]

# module -> (version, types used (in dependency order), messages, services)
MODULES: dict[str, dict[str, Any]] = {
    "memclnt": {
        "version": "2.1.0",
        "types": ["module_version", "message_table_entry"],
        # memclnt.api order: VPP numbers these 1.., so 15/16 are the sockclnt pair
        "messages": [
            (
                "memclnt_create",
                [
                    ("u32", "context"),
                    ("i32", "ctx_quota"),
                    ("u64", "input_queue"),
                    ("string", "name", 64),
                    ("u32", "api_versions", 8),
                ],
            ),
            (
                "memclnt_create_reply",
                [
                    ("u32", "context"),
                    ("i32", "response"),
                    ("u64", "handle"),
                    ("u32", "index"),
                    ("u64", "message_table"),
                ],
            ),
            ("memclnt_delete", [("u32", "index"), ("u64", "handle"), ("bool", "do_cleanup")]),
            ("memclnt_delete_reply", [("i32", "response"), ("u64", "handle")]),
            ("rx_thread_exit", [("u8", "dummy")]),
            ("memclnt_rx_thread_suspend", [("u8", "dummy")]),
            ("memclnt_read_timeout", [("u8", "dummy")]),
            (
                "rpc_call",
                REQ
                + [
                    ("u64", "function"),
                    ("u8", "multicast"),
                    ("u8", "need_barrier_sync"),
                    ("u8", "send_reply"),
                    ("u32", "data_len"),
                    ("u8", "data", 0, "data_len"),
                ],
            ),
            ("rpc_call_reply", REPLY),
            ("get_first_msg_id", REQ + [("string", "name", 64)]),
            ("get_first_msg_id_reply", REPLY + [("u16", "first_msg_id")]),
            ("api_versions", REQ),
            (
                "api_versions_reply",
                REPLY + [("u32", "count"), ("vl_api_module_version_t", "api_versions", 0, "count")],
            ),
            (
                "trace_plugin_msg_ids",
                REQ
                + [("string", "plugin_name", 128), ("u16", "first_msg_id"), ("u16", "last_msg_id")],
            ),
            ("sockclnt_create", [("u32", "context"), ("string", "name", 64)]),
            (
                "sockclnt_create_reply",
                [
                    ("u32", "client_index"),
                    ("u32", "context"),
                    ("i32", "response"),
                    ("u32", "index"),
                    ("u16", "count"),
                    ("vl_api_message_table_entry_t", "message_table", 0, "count"),
                ],
            ),
            ("sockclnt_delete", REQ + [("u32", "index")]),
            ("sockclnt_delete_reply", [("u32", "context"), ("i32", "response")]),
            (
                "sock_init_shm",
                REQ
                + [("u32", "requested_size"), ("u8", "nitems"), ("u64", "configs", 0, "nitems")],
            ),
            ("sock_init_shm_reply", REPLY),
            ("memclnt_keepalive", REQ),
            ("memclnt_keepalive_reply", REPLY),
            ("control_ping", REQ),
            ("control_ping_reply", REPLY + [("u32", "client_index"), ("u32", "vpe_pid")]),
            (
                "memclnt_create_v2",
                [
                    ("u32", "context"),
                    ("i32", "ctx_quota"),
                    ("u64", "input_queue"),
                    ("string", "name", 64),
                    ("u32", "api_versions", 8),
                    ("bool", "keepalive", {"default": "true"}),
                ],
            ),
            (
                "memclnt_create_v2_reply",
                [
                    ("u32", "context"),
                    ("i32", "response"),
                    ("u64", "handle"),
                    ("u32", "index"),
                    ("u64", "message_table"),
                ],
            ),
            ("get_api_json", REQ),
            ("get_api_json_reply", REPLY + [("string", "json", 0)]),
        ],
        "services": {
            "memclnt_rx_thread_suspend": {"reply": "null"},
            "memclnt_read_timeout": {"reply": "null"},
            "rx_thread_exit": {"reply": "null"},
            "trace_plugin_msg_ids": {"reply": "null"},
            "memclnt_create": {"reply": "memclnt_create_reply"},
            "memclnt_delete": {"reply": "memclnt_delete_reply"},
            "rpc_call": {"reply": "rpc_call_reply"},
            "get_first_msg_id": {"reply": "get_first_msg_id_reply"},
            "api_versions": {"reply": "api_versions_reply"},
            "sockclnt_create": {"reply": "sockclnt_create_reply"},
            "sockclnt_delete": {"reply": "sockclnt_delete_reply"},
            "sock_init_shm": {"reply": "sock_init_shm_reply"},
            "memclnt_keepalive": {"reply": "memclnt_keepalive_reply"},
            "control_ping": {"reply": "control_ping_reply"},
            "memclnt_create_v2": {"reply": "memclnt_create_v2_reply"},
            "get_api_json": {"reply": "get_api_json_reply"},
        },
    },
    "vlib": {
        "version": "1.0.0",
        "types": [],
        "messages": [
            ("cli_inband", REQ + [("string", "cmd", 0)]),
            ("cli_inband_reply", REPLY + [("string", "reply", 0)]),
        ],
        "services": {"cli_inband": {"reply": "cli_inband_reply"}},
    },
    "vpe": {
        "version": "1.7.0",
        "types": [],
        "messages": [
            ("show_version", REQ),
            (
                "show_version_reply",
                REPLY
                + [
                    ("string", "program", 32),
                    ("string", "version", 32),
                    ("string", "build_date", 32),
                    ("string", "build_directory", 256),
                ],
            ),
        ],
        "services": {"show_version": {"reply": "show_version_reply"}},
    },
    "ip_types": {
        "version": "3.0.0",
        "types": [
            "ip4_address",
            "ip6_address",
            "address_family",
            "ip_proto",
            "ip_dscp",
            "address_union",
            "address",
            "prefix",
            "address_with_prefix",
            "prefix_matcher",
        ],
        "messages": [],
        "services": {},
    },
    "ip": {
        "version": "3.2.0",
        "types": [
            "ip4_address",
            "ip6_address",
            "address_family",
            "ip_proto",
            "ip_dscp",
            "address_union",
            "address",
            "prefix",
            "address_with_prefix",
            "prefix_matcher",
            "fib_path_nh_proto",
            "fib_path_flags",
            "fib_path_type",
            "fib_mpls_label",
            "fib_path_nh",
            "fib_path",
            "ip_route",
        ],
        "messages": [
            (
                "ip_route_lookup",
                REQ + [("u32", "table_id"), ("u8", "exact"), ("vl_api_prefix_t", "prefix")],
            ),
            ("ip_route_lookup_reply", REPLY + [("vl_api_ip_route_t", "route")]),
        ],
        "services": {"ip_route_lookup": {"reply": "ip_route_lookup_reply"}},
    },
    "lb": {
        "version": "1.1.0",
        "types": [
            "ip4_address",
            "ip6_address",
            "address_family",
            "ip_proto",
            "ip_dscp",
            "address_union",
            "address",
            "prefix",
            "address_with_prefix",
            "prefix_matcher",
            "lb_srv_type",
            "lb_encap_type",
            "lb_vip",
        ],
        "messages": [
            (
                "lb_conf",
                REQ
                + [
                    ("vl_api_ip4_address_t", "ip4_src_address"),
                    ("vl_api_ip6_address_t", "ip6_src_address"),
                    ("u32", "sticky_buckets_per_core", {"default": 4294967295}),
                    ("u32", "flow_timeout", {"default": 4294967295}),
                ],
            ),
            ("lb_conf_reply", REPLY),
            (
                "lb_vip_dump",
                REQ
                + [
                    ("vl_api_address_with_prefix_t", "pfx"),
                    ("vl_api_prefix_matcher_t", "pfx_matcher"),
                    ("u8", "protocol", {"default": 255}),
                    ("u16", "port"),
                ],
            ),
            (
                "lb_vip_details",
                [
                    ("u32", "context"),
                    ("vl_api_lb_vip_t", "vip"),
                    ("vl_api_lb_encap_type_t", "encap"),
                    ("vl_api_ip_dscp_t", "dscp"),
                    ("vl_api_lb_srv_type_t", "srv_type"),
                    ("u16", "target_port"),
                    ("u16", "flow_table_length"),
                ],
            ),
            (
                "lb_as_dump",
                REQ
                + [("vl_api_address_with_prefix_t", "pfx"), ("u8", "protocol"), ("u16", "port")],
            ),
            (
                "lb_as_details",
                [
                    ("u32", "context"),
                    ("vl_api_lb_vip_t", "vip"),
                    ("vl_api_address_t", "app_srv"),
                    ("u8", "flags"),
                    ("u32", "in_use_since"),
                ],
            ),
        ],
        "services": {
            "lb_conf": {"reply": "lb_conf_reply"},
            "lb_vip_dump": {"reply": "lb_vip_details", "stream": True},
            "lb_as_dump": {"reply": "lb_as_details", "stream": True},
        },
    },
}

# VPP 25.10 CRCs (as VPP 25.10 and vpp_papi's bundled memclnt list them).
EXPECTED_CRCS: dict[str, int] = {
    "sockclnt_create": 0x455FB9C4,
    "sockclnt_create_reply": 0x35166268,
    "sockclnt_delete": 0x8AC76DB6,
    "sockclnt_delete_reply": 0x8F38B1EE,
    "control_ping": 0x51077D14,
    "control_ping_reply": 0xF6B0B8CA,
    "get_api_json": 0x51077D14,
    "get_api_json_reply": 0xEA715B59,
    "api_versions_reply": 0x5F0D99D6,
    "memclnt_create_v2": 0xC4BD4882,
    "cli_inband": 0xF8377302,
    "cli_inband_reply": 0x05879051,
    "ip_route_lookup": 0x710D6471,
    "ip_route_lookup_reply": 0x5D8FEBCB,
    "lb_vip_dump": 0x56110CB7,
    "lb_vip_details": 0x1329EC9B,
    "lb_as_dump": 0x1063F819,
    "lb_as_details": 0x8D24C29E,
    "lb_conf": 0x56CD3261,
    "lb_conf_reply": 0xE8D4E804,
    "show_version": 0x51077D14,
    "show_version_reply": 0xC919BDE1,
}


def _field_repr(f: Field) -> list[Any]:
    """The list vppapigen's Field/Array repr gives (options are not included)."""
    core = [x for x in f if not isinstance(x, dict)]
    if len(core) == 2:
        return core
    if len(core) == 3:
        return [core[0], core[1], core[2], None]
    return core


def _type_crc_bytes(name: str) -> bytes:
    kind, payload = TYPES[name]
    if kind == "enum":
        return str([[k, v] for k, v in payload[0]]).encode()
    if kind == "alias":
        return b"[]"
    return str([_field_repr(f) for f in payload]).encode()


def _fold(fields: list[Field], crc: int) -> int:
    for f in fields:
        ftype = f[0]
        if ftype.startswith("vl_api_"):
            tname = ftype[len("vl_api_") : -len("_t")]
            crc = binascii.crc32(_type_crc_bytes(tname), crc) & 0xFFFFFFFF
            kind, payload = TYPES[tname]
            if kind in ("type", "union"):
                crc = _fold(payload, crc)
    return crc


def message_crc(fields: list[Field]) -> int:
    """vppapigen's CRC of a message given its fields without ``_vl_msg_id``."""
    crc = binascii.crc32(str([_field_repr(f) for f in fields]).encode()) & 0xFFFFFFFF
    return _fold(fields, crc)


def _json_field(f: Field) -> list[Any]:
    return list(f)


def module_json(module: str) -> dict[str, Any]:
    """The ``.api.json`` document of one module, shaped like vppapigen's output."""
    spec = MODULES[module]
    types: list[Any] = []
    unions: list[Any] = []
    enums: list[Any] = []
    aliases: dict[str, Any] = {}
    for tname in spec["types"]:
        kind, payload = TYPES[tname]
        if kind == "type":
            types.append([tname, *[_json_field(f) for f in payload]])
        elif kind == "union":
            unions.append([tname, *[_json_field(f) for f in payload]])
        elif kind == "enum":
            members, enumtype = payload
            enums.append([tname, *[[k, v] for k, v in members], {"enumtype": enumtype}])
        else:
            aliases[tname] = dict(payload)
    messages = []
    for name, fields in spec["messages"]:
        crc = message_crc(fields)
        messages.append(
            [
                name,
                ["u16", "_vl_msg_id"],
                *[_json_field(f) for f in fields],
                {"crc": f"0x{crc:08x}", "options": {}},
            ]
        )
    return {
        "types": types,
        "messages": messages,
        "unions": unions,
        "enums": enums,
        "enumflags": [],
        "services": spec["services"],
        "options": {"version": spec["version"]},
        "aliases": aliases,
        "vl_api_version": "0x%08x" % (binascii.crc32(module.encode()) & 0xFFFFFFFF),
        "imports": [],
        "counters": [],
        "paths": [],
    }


def check() -> dict[str, tuple[int, int]]:
    """Return ``{message: (computed, expected)}`` for every CRC that differs."""
    bad: dict[str, tuple[int, int]] = {}
    for spec in MODULES.values():
        for name, fields in spec["messages"]:
            if name in EXPECTED_CRCS:
                got = message_crc(fields)
                if got != EXPECTED_CRCS[name]:
                    bad[name] = (got, EXPECTED_CRCS[name])
    return bad


def render(module: str) -> str:
    return json.dumps(module_json(module), indent=2) + "\n"


def write_all(directory: Path = API_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for module in MODULES:
        path = directory / f"{module}.api.json"
        path.write_text(render(module))
        out.append(path)
    return out


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    mismatches = check()
    if mismatches:
        raise SystemExit(f"crc mismatch: {mismatches}")
    for p in write_all():
        print(p)
