"""otalink host agent: runs on the telematics gateway (CPython)."""
