"""TUF repositories (Image + per-vehicle Director) and the tool behind ``otalink repo``."""
