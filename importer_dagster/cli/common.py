"""What every command shares: exit statuses, one-line errors, the instance, a job run in this process."""

from __future__ import annotations

import sys

from importer_dagster.core import settings

EXIT_FAILED = 1
"""An API answered with an error, or a run failed: nothing on this side to fix."""
EXIT_MISTAKE = 2
"""A mistake on the command line or in the configuration, named in one line."""


class UsageError(Exception):
    """A mistake on the command line or in the environment, reported in one line."""


def instance():
    import dagster as dg

    if not settings.DAGSTER_HOME.get():
        raise UsageError("DAGSTER_HOME is not set: point it at the Dagster instance")
    return dg.DagsterInstance.get()


def run_job(job_name: str, op_name: str, config: dict):
    """A new run of one of the code location's jobs, recorded in the instance like any other.

    Returns the result, or prints the step's failure in one line and returns None.
    """
    from importer_dagster.definitions import defs

    result = defs.get_job_def(job_name).execute_in_process(
        run_config={"ops": {op_name: {"config": config}}}, instance=instance(), raise_on_error=False
    )
    if result.success:
        return result
    failure = next(event for event in result.all_events if event.is_step_failure).step_failure_data
    reason = failure.user_failure_data.description if failure.user_failure_data else failure.error.message
    print(f"error: {job_name} run {result.run_id} failed: {' '.join(reason.split())}", file=sys.stderr)
    return None
