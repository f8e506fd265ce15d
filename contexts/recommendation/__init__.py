"""Recommendation context: a purchase profile per customer, built from other contexts' events,
and the products to suggest to them next."""
