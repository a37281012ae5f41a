"""otalink tufclient."""
