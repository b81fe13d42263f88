"""Writes that race when several processes start on one store at once, and the retry that settles them.

Two kinds, both seen with workers started together on a fresh sqlite file (a shared search, two runs of
`benchmarks/seed_bars.py --jobs 2`): the schema race — MLflow migrates its tables on first use and Optuna
creates its own, and a second creator fails with "table ... already exists", a locked database or a duplicate
column — and the insert race — two runs log the same dataset (same experiment, name and digest) at the same
moment, MLflow checks that the row is missing, both insert it, and the second fails on the unique constraint.
In both the loser's retry finds the winner's tables or row and goes through.
"""

from __future__ import annotations

# What the loser reads (sqlite's and PostgreSQL's wording): a table or column the winner created a moment before,
# the winner's write lock, or a row (alembic_version, a dataset) both inserted.
RACE_MESSAGES = ("already exists", "database is locked", "duplicate column name", "unique constraint failed",
                 "duplicate key value violates unique constraint")


def retry_race(make, budget_s: float = 180.0):
    """``make()``, tried again after a short random wait while it fails with one of the races above — on a
    loaded machine a migration takes tens of seconds, hence a time budget rather than a count. Any other error (a
    mistyped URL, a directory that does not exist, a refused connection) is raised at once: the race is told by
    its message, not by the library raising."""
    import random
    import time

    deadline = time.monotonic() + budget_s
    while True:
        try:
            return make()
        except Exception as err:  # noqa: BLE001 -- sqlalchemy / alembic / MLflow wrap the race's error
            racing = any(k in str(err).lower() for k in RACE_MESSAGES)
            if not racing or time.monotonic() > deadline:
                raise
            time.sleep(0.5 + random.random())
