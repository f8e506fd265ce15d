"""The wishlist context: every registered user gets a wishlist, which anyone may read."""
