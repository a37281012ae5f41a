"""The infotainment screen: static HTML/CSS/JS served by the local API at ``/``."""
