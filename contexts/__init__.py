"""The bounded contexts. Each is imported from outside only through its ``api`` and ``events``."""
