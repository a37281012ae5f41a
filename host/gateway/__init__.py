"""The runtime on the telematics gateway: config, campaign, update, ECU link, local API, vehicle.

Nothing here imports ``otalink.host.tools`` or ``otalink.host.sim`` (import-linter contract).
"""
