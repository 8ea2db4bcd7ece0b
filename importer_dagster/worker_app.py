"""What `celery --app importer_dagster.worker_app worker` serves: built when a worker imports it,
never by the code location, because it needs the broker's settings (`workers.celery_app`)."""

from importer_dagster.workers import celery_app

app = celery_app()
