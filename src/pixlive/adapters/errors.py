"""Our own names for what infrastructure does wrong; drivers' errors stop at the adapters."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached or cannot commit now; the caller may retry later."""


class Conflict(Exception):
    """A uniqueness constraint refused the write (another writer got there first)."""


class TransientConflict(DatabaseUnavailable):
    """Two transactions got in each other's way (a deadlock); running again will do."""
