"""Order context: placing, reading and cancelling orders."""
