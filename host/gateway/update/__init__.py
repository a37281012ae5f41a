"""Update verification and downloads: two python-tuf ngclients, the Director/Image cross-check,
resumable downloads and connectivity.

Entry point: ``otalink.host.gateway.update.client.UpdateClient``."""
