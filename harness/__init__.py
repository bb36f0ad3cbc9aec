"""What the tests and the benchmarks both use to run the real system: free ports, a real
redis-server, Prometheus and HAProxy, service processes, socket.io pages, a headless browser.
Neither `tests` nor `bench` imports the other; both import this."""
