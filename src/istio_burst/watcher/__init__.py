"""watcher (to be written)."""
