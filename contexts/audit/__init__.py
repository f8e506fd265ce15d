"""Audit context: an append-only log of what happened to users and orders, for administrators."""
