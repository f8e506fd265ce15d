"""Databases: engines and pools per server, the unit of work, column types, migrations."""
