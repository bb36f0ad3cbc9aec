"""The local demo: every component of String Hashr as a process on this machine, no Docker."""
