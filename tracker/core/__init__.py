"""The shared vocabulary every stage speaks: plain data types, errors, text and URL helpers,
the configuration, feed scheduling arithmetic, logging setup and where shipped files live.

Imports nothing else from the tracker; every other subpackage may import it.
"""
