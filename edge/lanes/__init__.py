"""The lane, the interlock's imperative shell: one filling position's scanners, scale, relay,
signals and buttons fed to the pure fill machine of interlock.fill, and its effects carried out
(lane.py); the live lookup that asks the city about a scanned code the cache refuses (lookup.py).
Nothing here imports the daemon that runs the lanes (edge.daemon) or the pages that show them."""
