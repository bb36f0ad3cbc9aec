"""The frontend: the String Hashr page, the load driver and the live hash stream."""
