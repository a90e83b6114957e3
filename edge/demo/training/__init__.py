"""Training and evaluation without hardware: the simulated station kept running, driven from a
small console in the browser (`edge demo --serve`)."""
