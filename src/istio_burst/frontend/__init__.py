"""frontend (to be written)."""
