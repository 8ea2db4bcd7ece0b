"""The import itself, free of Dagster: windows, the member scan, transform, export, replay, state, HTTP.

Nothing in this package imports Dagster, directly or through another module (a test holds it to
that); the Dagster layer around it (definitions, partitions, assets, checks, jobs, schedules,
sensors, resources) imports from here, never the other way round.
"""
