"""Helpers the tests share: free ports, a real redis-server, service processes."""
