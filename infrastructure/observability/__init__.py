"""Metrics (and soon traces): what the shop tells its operators beyond its logs."""
