"""Operator tools that never run in the car: TUF repositories, the update server, deployment."""
