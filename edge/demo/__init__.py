"""The demo and the simulation harness, apart from the daemon: `edge demo` with its scripted
operators (run.py) and checker (checks.py), the stand-ins a simulated config names (simulation.py,
also what `edge run` starts for config/simulated.yaml), and the training console of
`edge demo --serve` (training/). The daemon never imports this package."""
