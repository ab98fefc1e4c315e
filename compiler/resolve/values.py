"""Checking single values: names, addresses, numbers, ports, ICMP types.

Each function records a diagnostic and returns None on bad input, so the
caller can go on and report every problem in one run.
"""

from __future__ import annotations

import re

from netaddr import INET_PTON, AddrFormatError, IPAddress, IPNetwork

from .. import model as m
from .. import syntax as s
from ..diagnostics import Diagnostics, did_you_mean

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_ASN = 4_294_967_295

ICMP_TYPES = {
    "echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5,
    "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11,
    "parameter-problem": 12, "timestamp-request": 13, "timestamp-reply": 14,
}
ICMPV6_TYPES = {
    "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
    "echo-request": 128, "echo-reply": 129, "router-solicitation": 133, "router-advertisement": 134,
    "neighbor-solicitation": 135, "neighbour-solicitation": 135, "neighbor-advertisement": 136,
    "neighbour-advertisement": 136, "redirect": 137,
}


def suggest_label(text: str) -> str:
    """The nearest valid DNS label, for the hint of an invalid name."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return re.sub(r"-{2,}", "-", label)[:63].strip("-") or "name"


def check_name(name: s.Name, what: str, diags: Diagnostics) -> bool:
    """Names become file names, label values and resource names: RFC 1123 labels."""
    if DNS_LABEL.match(name.value):
        return True
    if len(name.value) > 63:
        problem = "is longer than 63 characters"
    elif "." in name.value:
        problem = "contains a dot"
    else:
        problem = "is not a valid DNS label (lowercase letters, digits and `-`, starting and ending alphanumeric)"
    short = name.value.split(".")[0] if "." in name.value else name.value
    hint = f"names become file and resource names; try `{suggest_label(short)}`"
    diags.error("E101", f"{what} name `{name.value}` {problem}", name.span, hint)
    return False


RESERVED_NAMESPACES = m.RESERVED_NAMESPACES


def check_namespace_file(name: s.Name, written: bool, diags: Diagnostics) -> bool:
    """A namespace becomes a file name beside the cluster's own files: it must not take theirs."""
    if name.value not in RESERVED_NAMESPACES:
        return True
    what = "namespace" if written else f"app `{name.value}` has no `namespace`, so its namespace"
    hint = "choose another namespace" if written else f"add `namespace NAME` to app {name.value}"
    diags.error("E110", f"{what} `{name.value}` would overwrite calico/<cluster>/{name.value}.yaml, "
                "a file of the cluster's own", name.span, hint)
    return False


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return IPAddress(text, flags=INET_PTON)
    except (AddrFormatError, ValueError, TypeError):
        return None


def parse_address(addr: s.Address, what: str, diags: Diagnostics, version: int | None = None) -> IPAddress | None:
    """A single address, no prefix length (or a full-length one)."""
    text, _, prefix = addr.text.partition("/")
    ip = _parse_ip(text)
    if ip is None:
        diags.error("E201", f"`{addr.text}` is not a valid IP address", addr.span)
        return None
    if prefix and prefix != str(32 if ip.version == 4 else 128):
        diags.error("E207", f"{what} must be a single address, not the prefix `{addr.text}`", addr.span,
                    f"write `{text}`")
        return None
    if version and ip.version != version:
        diags.error("E203", f"{what} must be an IPv{version} address; `{addr.text}` is IPv{ip.version}", addr.span)
        return None
    return ip


def parse_network(addr: s.Address, what: str, diags: Diagnostics, require_prefix: bool = True) -> IPNetwork | None:
    """A CIDR with no host bits set; a bare address is a /32 or /128 when allowed."""
    text, slash, prefix = addr.text.partition("/")
    ip = _parse_ip(text)
    if ip is None:
        diags.error("E201", f"`{addr.text}` is not a valid IP address", addr.span)
        return None
    width = 32 if ip.version == 4 else 128
    if not slash:
        if require_prefix:
            diags.error("E208", f"{what} needs a prefix length: `{addr.text}`", addr.span,
                        f"write for example `{addr.text}/{24 if ip.version == 4 else 64}`")
            return None
        return IPNetwork(f"{ip}/{width}")
    if not prefix.isdigit() or int(prefix) > width:
        diags.error("E201", f"`{addr.text}` has an invalid prefix length (0 to {width} for IPv{ip.version})",
                    addr.span)
        return None
    net = IPNetwork(f"{ip}/{int(prefix)}")
    if net.ip != net.network:
        diags.error("E202", f"`{addr.text}` has host bits set", addr.span, f"did you mean `{net.cidr}`?")
        return None
    return net


def check_asn(value: s.Int, diags: Diagnostics) -> int | None:
    if 1 <= value.value <= MAX_ASN:
        return value.value
    diags.error("E301", f"AS number {value.value} is out of range (1 to {MAX_ASN})", value.span)
    return None


def check_port(value: s.Int, diags: Diagnostics) -> int | None:
    if 1 <= value.value <= 65535:
        return value.value
    diags.error("E401", f"port {value.value} is out of range (1 to 65535)", value.span)
    return None


def icmp_type_of(protocol: str, item: s.IcmpPorts, diags: Diagnostics) -> tuple[int | None, int | None] | None:
    """The (type, code) an ICMP item names; (None, None) for any type."""
    if item.type_name is not None:
        table = ICMP_TYPES if protocol == "icmp" else ICMPV6_TYPES
        number = table.get(item.type_name.value)
        if number is None:
            diags.error("E404", f"unknown {protocol} type `{item.type_name.value}`", item.type_name.span,
                        did_you_mean(item.type_name.value, table) or f"known types: {', '.join(sorted(table))}")
            return None
        return number, None
    if item.type_number is None:
        return None, None
    ok = True
    if not 0 <= item.type_number.value <= 254:
        diags.error("E405", f"ICMP type {item.type_number.value} is out of range (0 to 254)", item.type_number.span,
                    "Calico rejects type 255 (reserved), so the language does too")
        ok = False
    if item.code is not None and not 0 <= item.code.value <= 255:
        diags.error("E405", f"ICMP code {item.code.value} is out of range (0 to 255)", item.code.span)
        ok = False
    return (item.type_number.value, item.code.value if item.code else None) if ok else None
