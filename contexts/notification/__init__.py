"""Notification context: tells customers by email that they registered and that they ordered."""
