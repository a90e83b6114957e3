"""The lane screens and metrics: the read-only status page and its JSON (server.py, status.html)
and the Prometheus exposition (metrics.py), served from a thread of the daemon. The page reads
the station through the small StationView protocol of server.py, so nothing here imports the
daemon (edge.daemon) that starts it."""
