"""The offline demo (`tracker demo`): a local news site served on 127.0.0.1 from shipped
articles (``site``), and one end-to-end run of the tracker against it (``run``).

May import ``service`` and everything below it; only ``cli`` imports it.
"""
