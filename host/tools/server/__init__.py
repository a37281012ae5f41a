"""otalink server."""
