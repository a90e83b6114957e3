"""The daemon: assembly, lanes (the imperative shell), store, config, CLI, logging."""

__version__ = "0.1.0"
