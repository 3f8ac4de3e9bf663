"""Story signatures and the in-memory index that groups re-reports of one event (pure: no
database; the store keeps the signatures, ``pipeline.grouping`` keeps the index in step).

May import ``core`` only.
"""
