"""`importer-dagster worker`: a Celery worker that runs import steps on this host."""

from __future__ import annotations

import argparse
import os
import socket
import sys

from importer_dagster.core import settings
from importer_dagster.workers import QUEUE


def cmd_worker(args: argparse.Namespace) -> int:
    """Replaces this process with Celery's worker, so a process manager supervises Celery itself
    and its signals (TERM: finish the running steps first) reach it directly."""
    settings.required(settings.CELERY_BROKER_URL.name, settings.CELERY_BROKER_URL.get(),
                      "the Celery broker the daemon hands steps to, e.g. amqp://user:pass@rabbit//")
    settings.check_all()
    queues = ",".join(dict.fromkeys([QUEUE, *args.queue]))
    argv = [sys.executable, "-m", "celery", "--app", "importer_dagster.worker_app", "worker", "--loglevel", args.loglevel,
            "--queues", queues, "--hostname", f"{args.name or 'importer'}@{socket.gethostname()}",
            "--concurrency", str(args.concurrency), "--without-gossip", "--without-mingle"]
    os.execvp(argv[0], argv)
