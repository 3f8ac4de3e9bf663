"""The ``tracker`` command: a thin shell over the library, one module per group of commands.

The top of the stack: it may import anything, and nothing in the package imports it.
"""
