"""The demo-stack fixtures (tests/sim/demo/conftest.py) for the API and screen tests."""

from tests.sim.demo.conftest import browser, make_stack, screens_dir, shared_stack

__all__ = ["browser", "make_stack", "screens_dir", "shared_stack"]
