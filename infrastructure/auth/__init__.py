"""Who is calling: bearer tokens (signed, checked against the user's record) and the service token
the shop's own services present to each other's internal endpoints."""
