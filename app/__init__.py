"""Composition root: the only package that knows every context and wires them together."""
