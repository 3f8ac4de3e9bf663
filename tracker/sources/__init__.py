"""Getting bytes from the open web safely: the HTTP fetcher with its budgets, the SSRF guard,
bounded Content-Encoding decoding, feed parsing into entries, per-host politeness queues.

May import ``core`` only.
"""
