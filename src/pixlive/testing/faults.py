"""Faults that tests inject into a real server, through variables of the test prefix
(which the check of settings leaves alone). Unset, each costs nothing: the real
callable is handed back as it is."""

from __future__ import annotations

import os
from collections.abc import Callable

from pixlive.domain.events import RecordedEvent

CRASH_AFTER_COMMIT = "PIXLIVE_TEST_CRASH_AFTER_COMMIT"

OnCommit = Callable[[list[RecordedEvent]], None]


def crash_after_commit(on_commit: OnCommit) -> OnCommit:
    """With PIXLIVE_TEST_CRASH_AFTER_COMMIT=<event type>, the process dies at once (no
    cleanup, as `kill -9` would) after the COMMIT of a batch that holds such an event,
    before anything is published or answered."""
    kind = os.environ.get(CRASH_AFTER_COMMIT)
    if not kind:
        return on_commit

    def crashing(events: list[RecordedEvent]) -> None:
        if any(event.type == kind for event in events):
            os._exit(70)
        on_commit(events)

    return crashing
