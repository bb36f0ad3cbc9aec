"""The soak test with faults: `./run soak` (see soak/run.py)."""
