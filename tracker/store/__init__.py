"""The SQL store: the schema (SQLAlchemy models), migrations, the ``Store`` that the cycle writes
through and commands read from, story placement tables, and the one-service-per-file lock.

May import ``core`` and the pure stages below it (``stories`` for signatures).
"""
