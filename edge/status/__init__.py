"""The lane screens and metrics: the read-only status page and its JSON (server.py, status.html)
and the Prometheus exposition (metrics.py), served from a thread of the daemon."""
