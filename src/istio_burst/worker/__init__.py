"""The worker: hashes strings and publishes the results on Redis."""
