"""The city traceability system: record shaping now; the profile client and uploader build on it."""
