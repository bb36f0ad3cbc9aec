"""demo (to be written)."""
