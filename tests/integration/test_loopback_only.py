"""Every embedded service listens on 127.0.0.1 only (ARCHITECTURE.md §5): never on 0.0.0.0 or
`::`, where anyone on the network could reach an unauthenticated Kafka, PostgreSQL, Redis,
SMTP inbox or Stripe emulator. Judged from the kernel's socket table, not from our configs."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from infra.embedded.stack import RunningStack

pytestmark = pytest.mark.integration
LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    inode: int

    @property
    def loopback(self) -> bool:
        address = self.address
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address == ipaddress.IPv4Address("127.0.0.1")


def _decode(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp{,6} print each 32-bit word in host (little-endian) byte order.
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(packed)


def listeners() -> list[Listener]:
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            address, port = fields[1].split(":")
            found.append(Listener(_decode(address), int(port, 16), int(fields[9])))
    return found


def sockets_of(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def service_ports(stack: RunningStack) -> dict[str, int]:
    s = stack.settings
    urls = {
        "kafka": f"kafka://{s.kafka_bootstrap_servers}",
        "postgres": s.database_url,
        "redis": s.redis_url,
        "stripe": s.stripe_api_base,
        "smtp": s.smtp_url,
    }
    return {
        name: urlsplit(url).port or 0 for name, url in urls.items() if url and name in stack.started
    }


def test_the_socket_table_reader_sees_a_wildcard_bind() -> None:
    # The check below is only worth something if it would catch a 0.0.0.0 bind.
    with socket.socket() as wide, socket.socket() as narrow:
        wide.bind(("0.0.0.0", 0))
        wide.listen()
        narrow.bind(("127.0.0.1", 0))
        narrow.listen()
        by_port = {entry.port: entry for entry in listeners()}
        assert not by_port[wide.getsockname()[1]].loopback
        assert by_port[narrow.getsockname()[1]].loopback


def test_every_embedded_service_listens_on_loopback_only(stack: RunningStack) -> None:
    ports = service_ports(stack)
    assert set(ports) == {"kafka", "postgres", "redis", "stripe", "smtp"}, stack.started
    table = listeners()
    for name, port in ports.items():
        on_port = [entry for entry in table if entry.port == port]
        assert on_port, f"{name}: nothing listens on {port}"
        assert all(entry.loopback for entry in on_port), f"{name}: {on_port}"
    # Every other listening socket of the services' own processes too (Kafka's controller,
    # anything a JVM or emulator opens by itself).
    for name, pid in stack.pids.items():
        inodes = sockets_of(pid)
        owned = [entry for entry in table if entry.inode in inodes]
        assert owned, f"{name} (pid {pid}) listens nowhere?"
        assert all(entry.loopback for entry in owned), f"{name}: {owned}"


def _outside_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent for UDP connect
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_machines_own_address_is_refused(stack: RunningStack) -> None:
    outside = _outside_address()
    if outside is None:  # a machine with loopback only: nothing to reach from outside
        return
    for name, port in service_ports(stack).items():
        with socket.socket() as client:
            client.settimeout(2)
            assert client.connect_ex((outside, port)) != 0, f"{name} answers on {outside}"
