"""The embedded default (``make demo`` / ``otalink demo``) and its headless scenarios.

``stack.DemoStack`` assembles update server, simulated vehicle, three MicroPython ECUs behind
paced lines and the host agent with its screen; ``scenarios.play(name, stack)`` drives one of
the product's scenarios through the local API. Tests, the demo and the browser tests share both.
"""
