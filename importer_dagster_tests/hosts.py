"""Worker hosts on one machine: network namespaces joined to it by veth pairs.

Each host has its own network stack, so it reaches the machine's services only through its veth
peer's address, as a second machine would through its network. Creating namespaces needs root;
`unavailable()` says why when it cannot be done here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if not shutil.which("ip"):
        return "the `ip` command (iproute2) is missing"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Host:
    """One namespace: `address` is its own, `gateway` the machine's end of its veth pair."""

    name: str
    namespace: str
    address: str
    gateway: str

    def popen(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen:
        with log.open("ab") as output:
            return subprocess.Popen(["ip", "netns", "exec", self.namespace, *argv], env=dict(env), stdout=output,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def pids(self) -> list[int]:
        listed = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True)
        return [int(pid) for pid in listed.stdout.split()]

    def kill_everything(self) -> list[int]:
        """kill -9 of every process on the host, as a machine that loses power: returns the pids."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids


@contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    """`count` hosts, 10.231.<n>.2 each, the machine at 10.231.<n>.1; all removed afterwards."""
    tag = uuid.uuid4().hex[:5]
    made: list[Host] = []
    try:
        for index in range(count):
            subnet = 100 + (os.getpid() + index * 7) % 150
            host = Host(f"host-{chr(97 + index)}", f"imp-{tag}-{index}", f"10.231.{subnet}.2", f"10.231.{subnet}.1")
            outside, inside = f"vo{tag}{index}", f"vi{tag}{index}"
            _ip("netns", "add", host.namespace)
            made.append(host)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", host.namespace)
            _ip("addr", "add", f"{host.gateway}/24", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("netns", "exec", host.namespace, "ip", "addr", "add", f"{host.address}/24", "dev", inside)
            _ip("netns", "exec", host.namespace, "ip", "link", "set", inside, "up")
            _ip("netns", "exec", host.namespace, "ip", "link", "set", "lo", "up")
        yield made
    finally:
        for host in made:
            host.kill_everything()
            time.sleep(0.2)
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        for index in range(len(made)):
            subprocess.run(["ip", "link", "del", f"vo{tag}{index}"], capture_output=True)


@contextmanager
def relay(routes: Sequence[str]) -> Iterator[None]:
    """`LISTEN:PORT=TARGET:PORT` routes, relayed by a process of their own until the block ends."""
    process = subprocess.Popen([sys.executable, "-m", "importer_dagster_tests.relay", *routes],
                               stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the relay did not start")
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
