"""Numeric limits of the database columns, for checks that must refuse a number before a query does."""

MAX_ID = 2**63 - 1  # BigAutoField: signed 64-bit
MAX_INT32 = 2**31 - 1  # IntegerField / PositiveIntegerField on every backend


def is_db_id(value: object) -> bool:
    """A whole number that can be a row id (bools are ints in Python, but never ids)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID
