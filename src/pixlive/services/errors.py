"""Our own names for what infrastructure does wrong: the adapters translate their drivers' errors
into these, and the services and entry points handle only these."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached or cannot commit now; the caller may retry later."""


class Conflict(Exception):
    """A uniqueness constraint refused the write (another writer got there first)."""


class TransientConflict(DatabaseUnavailable):
    """Two transactions got in each other's way (a deadlock); running again will do."""


class InvalidData(ValueError):
    """The database refused the values of one statement (a NUL character in text, a string
    longer than its column, a NOT NULL or CHECK constraint). That is the fault of the one
    write, not of the database: the group-commit writer fails that job alone, where a
    DatabaseUnavailable would fail every job of its batch."""
