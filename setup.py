"""Maps the top-level folders onto one import namespace (ADR 0001).

host/ -> otalink.host, protocol/ -> otalink.protocol, device/ -> otalink.device.
Everything else is declared in pyproject.toml.
"""

import os

from setuptools import setup

ROOTS = {"host": "otalink.host", "protocol": "otalink.protocol", "device": "otalink.device"}


def _packages() -> list[str]:
    found = []
    for folder, name in ROOTS.items():
        for dirpath, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            if "__init__.py" in files:
                found.append(name + dirpath[len(folder) :].replace(os.sep, "."))
    return found


setup(
    packages=_packages(),
    package_dir={name: folder for folder, name in ROOTS.items()},
    package_data={
        "otalink.host": ["py.typed", "gateway/web/*", "gateway/web/**/*", "gateway/api/*.json"],
        "otalink.protocol": ["py.typed", "*.pyi"],
    },
)
