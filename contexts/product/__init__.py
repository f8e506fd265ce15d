"""Product context: the catalog (products, prices) and inventory (stock, reservations)."""
