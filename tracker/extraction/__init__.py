"""From an article page to an ``Article``: main text, title, dates and language (trafilatura),
with the feed entry as fallback.

May import ``core`` only.
"""
