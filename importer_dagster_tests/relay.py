"""A TCP relay: makes services that listen on 127.0.0.1 reachable at another address of this machine.

The multi-host test's worker hosts live in network namespaces and reach the machine through veth
addresses, while PostgreSQL, Redis and RabbitMQ listen on 127.0.0.1 only. Run as
`python -m importer_dagster_tests.relay LISTEN_HOST:PORT=TARGET_HOST:PORT ...`; it prints `ready`
once every address listens, and relays until it is terminated.
"""

from __future__ import annotations

import asyncio
import sys


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass


def _handler(target_host: str, target_port: int):
    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, upstream_writer), _pump(upstream_reader, client_writer))

    return relay


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main(routes: list[str]) -> None:
    servers = []
    for route in routes:
        listen, _, target = route.partition("=")
        host, port = _address(listen)
        servers.append(await asyncio.start_server(_handler(*_address(target)), host, port, reuse_address=True))
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
