"""A network-namespace lab for packet-level tests of host firewalls (tests/test_ferm_packets.py).

Library side (`Lab`): a "switch" namespace holding a Linux bridge, and one namespace per endpoint
(the host under test, each class of source) joined to it by a veth pair. Each endpoint gets its
addresses (`/32`, `/128 nodad`) on its veth and on-link default routes, so every endpoint reaches
every other over the one segment, whatever the addresses: they live only inside the lab. Each
namespace has DAD off and rp_filter off, and the switch namespace has no IPv6 of its own (no
RS/MLD noise). Every namespace is named `fpk<pid>-<n>`: `cleanup_leftovers` removes those of a
run whose process is gone (a crashed run), and `Lab.close` removes its own, ending the processes
it started (by their id) first. Every command and wait has a bound.

Agent side (`python ferm_netns.py serve|probe`, run inside a namespace with `ip netns exec`):
- `serve SPEC`: TCP and UDP echo servers on the listed (proto, address, port); prints `READY`
  once every socket is bound; exits when its stdin closes or after `ttl` seconds.
- `probe`: reads a JSON list of probes on stdin, runs them all in parallel threads, prints a JSON
  object {id: result}: `open` (the echo came back), `timeout` (nothing: dropped), `refused`,
  `unreachable`, or `error: ...`. TCP: connect, send a token, read it back. UDP: connected
  socket, the token sent up to three times within the timeout, the first echo counts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from netaddr import IPAddress

PREFIX = "fpk"
COMMAND_TIMEOUT = 30  # any one command
READY_TIMEOUT = 15  # an agent binding its sockets
PROBE_TIMEOUT = 1.5  # one probe
AGENT = Path(__file__).resolve()


# ================================================================== agent (inside a namespace)
def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def serve(spec: list[list], ttl: float) -> None:
    sel = selectors.DefaultSelector()
    for proto, address, port in spec:
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(_family(address), kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, int(port)))
        if proto == "tcp":
            s.listen(256)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("listen" if proto == "tcp" else "udp"))
    print("READY", flush=True)
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.buffer.read()  # returns at EOF: the test closed the pipe or died
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    end = time.monotonic() + ttl
    while not stop.is_set() and time.monotonic() < end:
        for key, _ in sel.select(timeout=0.2):
            s, role = key.fileobj, key.data
            try:
                if role == "listen":
                    conn, _ = s.accept()
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, "conn")
                elif role == "conn":
                    data = s.recv(4096)
                    if data:
                        s.sendall(data)
                    sel.unregister(s)
                    s.close()
                else:
                    data, peer = s.recvfrom(4096)
                    s.sendto(data, peer)
            except OSError:
                if role == "conn":
                    sel.unregister(s)
                    s.close()


def _result(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return f"error: {exc!r}"


def probe_one(proto: str, address: str, port: int, timeout: float = PROBE_TIMEOUT) -> str:
    token = b"netpolc-" + secrets.token_hex(8).encode()
    end = time.monotonic() + timeout
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(_family(address), kind) as s:
        try:
            if proto == "tcp":
                s.settimeout(timeout)
                s.connect((address, port))
                s.sendall(token)
                got = b""
                while len(got) < len(token):
                    left = end - time.monotonic()
                    if left <= 0:
                        return "timeout"
                    s.settimeout(left)
                    chunk = s.recv(4096)
                    if not chunk:
                        return "error: closed before the echo"
                    got += chunk
                return "open" if got == token else f"error: echo {got!r}"
            s.connect((address, port))
            for attempt in range(3):  # a datagram may be lost while neighbours resolve
                s.send(token)
                wait_until = min(end, time.monotonic() + timeout / 3) if attempt < 2 else end
                while True:
                    left = wait_until - time.monotonic()
                    if left <= 0:
                        break
                    s.settimeout(left)
                    try:
                        data = s.recv(4096)
                    except TimeoutError:
                        break
                    if data == token:
                        return "open"
            return "timeout"
        except BaseException as exc:  # noqa: BLE001 - reported, not raised
            return _result(exc)


def probe(probes: list[dict]) -> dict[str, str]:
    if not probes:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(probes), 256)) as pool:
        futures = {p["id"]: pool.submit(probe_one, p["proto"], p["address"], int(p["port"]),
                                        float(p.get("timeout", PROBE_TIMEOUT))) for p in probes}
        return {k: f.result() for k, f in futures.items()}


def _main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        serve(json.loads(argv[1]), float(argv[2]) if len(argv) > 2 else 600.0)
        return 0
    if argv[:1] == ["probe"]:
        json.dump(probe(json.loads(sys.stdin.read())), sys.stdout)
        return 0
    print("usage: ferm_netns.py serve SPEC [TTL] | probe < PROBES", file=sys.stderr)
    return 2


# ================================================================== library (the test's side)
class LabError(AssertionError):
    pass


def run(argv: list[str], stdin: bytes | None = None, env: dict | None = None, check: bool = True,
        timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False, env=env)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: rc={done.returncode}: {done.stderr.decode().strip()}")
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_and_delete(ip: str, ns: str) -> None:
    pids = run([ip, "netns", "pids", ns], check=False).stdout.decode().split()
    for pid in pids:  # processes a lab started in its own namespace
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    run([ip, "netns", "del", ns], check=False)


def namespaces(ip: str) -> list[str]:
    out = run([ip, "netns", "list"], check=False).stdout.decode()
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def cleanup_leftovers(ip: str) -> list[str]:
    """Remove the namespaces (and their processes) of earlier runs whose process is gone."""
    removed = []
    for ns in namespaces(ip):
        m = re.match(rf"^{PREFIX}(\d+)-", ns)
        if m and (int(m.group(1)) == os.getpid() or not _alive(int(m.group(1)))):
            _kill_and_delete(ip, ns)
            removed.append(ns)
    return removed


@dataclass
class Endpoint:
    name: str  # what it stands for (a host, a class of sources)
    ns: str
    addresses: tuple[IPAddress, ...]

    def address(self, family: int) -> IPAddress | None:
        return next((a for a in self.addresses if a.version == family), None)


@dataclass
class Lab:
    tools: dict[str, str]  # ip, sysctl (absolute paths)
    workdir: Path
    env: dict = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    _counter: int = 0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # a private xtables lock: concurrent iptables users elsewhere cannot make ours fail
        self.env = {**os.environ, **self.env, "XTABLES_LOCKFILE": str(self.workdir / "xtables.lock"),
                    "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
        try:
            self.switch = self._netns()
            self._sysctl(self.switch, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            self._ip(self.switch, "link add br0 type bridge stp_state 0 mcast_snooping 0", "link set br0 up")
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------- plumbing
    def _netns(self) -> str:
        name = f"{PREFIX}{os.getpid()}-{self._counter}"
        self._counter += 1
        run([self.tools["ip"], "netns", "add", name])
        self.namespaces.append(name)
        run([self.tools["ip"], "-n", name, "link", "set", "lo", "up"])
        return name

    def _ip(self, ns: str, *commands: str) -> None:
        run([self.tools["ip"], "-n", ns, "-batch", "-"], stdin="\n".join(commands).encode() + b"\n")

    def _sysctl(self, ns: str, *settings: str) -> None:
        self.exec(ns, [self.tools["sysctl"], "-q", "-w", *settings])

    def exec(self, ns: str, argv: list[str], stdin: bytes | None = None, check: bool = True,
             timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        return run([self.tools["ip"], "netns", "exec", ns, *argv], stdin=stdin, env=self.env, check=check,
                   timeout=timeout)

    # -------------------------------------------------------------- endpoints
    def endpoint(self, name: str, addresses: Iterable[IPAddress | str]) -> Endpoint:
        ips = tuple(IPAddress(a) for a in addresses)
        ns = self._netns()
        self._sysctl(ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                     "net.ipv6.conf.default.router_solicitations=0", "net.ipv4.conf.all.rp_filter=0",
                     "net.ipv4.conf.default.rp_filter=0")
        port = f"p{len(self.endpoints)}"
        self._ip(self.switch, f"link add {port} type veth peer name v0 netns {ns}",
                 f"link set {port} master br0", f"link set {port} up")
        commands = [f"addr add {a}/{32 if a.version == 4 else 128} dev v0{' nodad' if a.version == 6 else ''}"
                    for a in ips]
        commands += ["link set v0 up", "route add default dev v0", "route add ::/0 dev v0"]
        self._ip(ns, *commands)
        ep = Endpoint(name, ns, ips)
        self.endpoints.append(ep)
        return ep

    # -------------------------------------------------------------- agents
    def serve(self, ep: Endpoint, listens: Iterable[tuple[str, IPAddress | str, int]], ttl: float = 600) -> None:
        """Echo servers in `ep`'s namespace; returns once they are all bound (bounded wait)."""
        spec = json.dumps([[p, str(a), int(n)] for p, a, n in listens])
        proc = subprocess.Popen([self.tools["ip"], "netns", "exec", ep.ns, sys.executable, "-I", str(AGENT), "serve",
                                 spec, str(ttl)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env)
        self.processes.append(proc)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout=READY_TIMEOUT)
        sel.close()
        line = proc.stdout.readline().decode().strip() if ready else ""
        if line != "READY":
            proc.kill()
            _, err = proc.communicate(timeout=COMMAND_TIMEOUT)
            raise LabError(f"echo servers in {ep.name} ({ep.ns}) did not start: {err.decode().strip()}")

    def probe_start(self, ep: Endpoint, probes: list[dict]) -> subprocess.Popen:
        proc = subprocess.Popen([self.tools["ip"], "netns", "exec", ep.ns, sys.executable, "-I", str(AGENT), "probe"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env)
        self.processes.append(proc)
        proc.stdin.write(json.dumps(probes).encode())
        proc.stdin.close()
        proc.stdin = None  # all written: communicate() must not touch it
        return proc

    def probe_finish(self, proc: subprocess.Popen, expected: int) -> dict[str, str]:
        rounds = expected / 256 + 1
        try:
            out, err = proc.communicate(timeout=PROBE_TIMEOUT * rounds + COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=COMMAND_TIMEOUT)
            raise LabError("a prober did not finish in time") from None
        if proc.returncode != 0:
            raise LabError(f"prober failed: {err.decode().strip()}")
        return json.loads(out)

    def probe_all(self, batches: dict[str, tuple[Endpoint, list[dict]]]) -> dict[str, dict[str, str]]:
        """Every batch at once, one prober per namespace: {batch: {probe id: result}}."""
        started = {k: (self.probe_start(ep, probes), len(probes)) for k, (ep, probes) in batches.items()}
        return {k: self.probe_finish(proc, n) for k, (proc, n) in started.items()}

    # -------------------------------------------------------------- teardown
    def close(self) -> list[str]:
        """End the agents, delete the namespaces; returns the problems met (for the test to assert)."""
        problems = []
        for proc in self.processes:
            if proc.poll() is None:
                if proc.stdin and not proc.stdin.closed:
                    proc.stdin.close()  # an echo server exits at EOF
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        problems.append(f"process {proc.pid} did not end")
            for stream in (proc.stdout, proc.stderr):
                if stream and not stream.closed:
                    stream.close()
        for ns in reversed(self.namespaces):
            _kill_and_delete(self.tools["ip"], ns)
        left = set(self.namespaces) & set(namespaces(self.tools["ip"]))
        if left:
            problems.append(f"namespaces left: {sorted(left)}")
        self.namespaces.clear()
        return problems

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
