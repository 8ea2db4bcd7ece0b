"""The sweep's memory settings: set for its length, and the collector's restored after it."""

import gc
import platform

from importer_dagster.core.memory import keep_freed_memory, streaming_memory


def test_freed_memory_is_kept_wherever_the_allocator_is_glibcs():
    assert keep_freed_memory() == (platform.libc_ver()[0] == "glibc")


def test_the_cycle_collector_is_rare_during_a_sweep_and_as_it_was_after_it():
    before = gc.get_threshold()
    with streaming_memory():
        assert gc.get_threshold()[0] == 50_000
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
