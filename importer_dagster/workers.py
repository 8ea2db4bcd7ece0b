"""Where a run's step executes: in the run's own process, or on Celery workers across hosts.

On one host (`make demo`, `dagster dev`) nothing is set and each run executes in its own
process. With `IMPORTER_CELERY_BROKER_URL` set, runs use dagster-celery's executor: the run's
process stays beside the daemon and hands its step to the broker (RabbitMQ), and whichever
worker host takes it does the import. Late acknowledgement means a worker host that dies mid-step
leaves its task on the broker, and another host runs the step again; the step skips the windows
it had already materialized and the export's idempotency keys make the rest safe to redo.

A worker host runs `importer-dagster worker`, which starts Celery on `app`, below. The worker
needs the same settings as the daemon (IMPORTER_*, DAGSTER_PG_*, the account keys), reaching
the shared PostgreSQL, Redis (`IMPORTER_REDIS_URL`) and object store (`IMPORTER_FILES_URL`).
"""

from __future__ import annotations

import dagster as dg

from importer_dagster.core import settings

QUEUE = "dagster"
"""dagster-celery's queue; a worker may also listen on one of its own."""
CELERY_SETTINGS = {
    # A task is acknowledged when it finishes, not when a worker takes it: a host that dies
    # mid-step leaves the task for another host instead of losing it.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # One task at a time per worker process: a host never sits on work another host could do.
    "worker_prefetch_multiplier": 1,
    # Each process starts afresh after a few runs, so a long-lived worker picks up a moved horizon
    # and never grows without bound.
    "worker_max_tasks_per_child": 20,
    "broker_connection_retry_on_startup": True,
}


def run_executor() -> dg.ExecutorDefinition:
    """In the run's process, unless a broker is configured. The broker's URL reaches the executor
    by its variable's name, so the UI never shows the password in it."""
    if not settings.CELERY_BROKER_URL.get():
        return dg.in_process_executor
    from dagster_celery import celery_executor

    return celery_executor.configured(
        {
            "broker": {"env": settings.CELERY_BROKER_URL.name},
            "backend": {"env": settings.CELERY_BACKEND_URL.name} if settings.CELERY_BACKEND_URL.get() else "rpc://",
            "config_source": CELERY_SETTINGS,
        },
        name="celery",
    )


def celery_app():
    """The Celery app a worker host serves: dagster-celery's step task, on our broker and settings."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    broker = settings.required(settings.CELERY_BROKER_URL.name, settings.CELERY_BROKER_URL.get(),
                               "the Celery broker every worker host and the daemon share, e.g. amqp://user:pass@rabbit//")
    executor = CeleryExecutor.for_cli(broker=broker, backend=settings.CELERY_BACKEND_URL.get() or "rpc://",
                                      config_source=CELERY_SETTINGS)
    app = make_app(executor.app_args())
    create_task(app)
    return app
