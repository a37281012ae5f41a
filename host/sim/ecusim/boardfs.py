"""An emulated ECU's folder laid out as a board's filesystem: its code at ``lib/``.

Public interface (stable):
    board_lib(root, tree) -> str   the ``MICROPYPATH`` entry of ``tree`` for an ECU run in ``root``
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def board_lib(root: Path, tree: Path) -> str:
    """The ``MICROPYPATH`` entry of ``tree`` for an ECU running in ``root``: ``lib``, a link made
    to the tree, as a board keeps its code in /lib. Every module's path (``__file__``) is interned
    on the ECU's heap for good: relative, it costs ~40 names x 24 characters whatever directory
    the clone is in (the absolute path cost 17 more per name in /work/main, more in a home
    directory). The absolute path when ``root/lib`` is something else."""
    link = root / "lib"
    target = os.fspath(tree.resolve())
    try:
        if link.is_symlink():
            if os.readlink(link) == target:
                return "lib"
            tmp = root / f".lib.{os.getpid()}.{threading.get_ident()}"
            os.symlink(target, tmp)
            os.replace(tmp, link)  # (atomic: another ECU in this folder may be starting)
            return "lib"
        if not link.exists():
            os.symlink(target, link)
            return "lib"
    except FileExistsError:
        return board_lib(root, tree)  # made meanwhile by another ECU in this folder
    except OSError:
        pass
    return target
