"""One poll cycle, end to end: due feeds fetched and parsed, new articles extracted, matched
and signed in worker processes, placed in stories and written in batches; plus re-running
rules (``rematch``) and grouping over what is already stored.

May import ``store`` and everything below it.
"""
