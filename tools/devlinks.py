"""Point the editable install's link tree at whole folders, so new modules need no reinstall.

setuptools' strict editable mode links file by file; replacing the three package folders with
directory links keeps the mapping (host/ -> otalink/host, ...) and picks up new files at once.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    trees = glob.glob(os.path.join(ROOT, "build", "__editable__.otalink-*", "otalink"))
    if not trees:
        print("devlinks: no editable link tree under build/", file=sys.stderr)
        return 1
    for tree in trees:
        for name in ("host", "protocol", "device"):
            link = os.path.join(tree, name)
            if os.path.islink(link):
                os.unlink(link)
            elif os.path.isdir(link):
                shutil.rmtree(link)
            os.symlink(os.path.join(ROOT, name), link)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
