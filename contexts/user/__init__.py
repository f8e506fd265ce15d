"""User context: registration, login (bearer tokens), roles, profile."""
