"""Hardware adapters: one typing.Protocol per device kind, real adapters beside each."""
