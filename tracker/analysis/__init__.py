"""What analysts read from the store: full-text search, exports (CSV, JSON Lines, Parquet),
the HTML report, plain-text tables and the Datasette web view.

May import ``digest`` (for the shared rendering) and everything below it.
"""
