"""``python -m otalink.host.tools.tufclient``."""

from otalink.host.tools.tufclient.client import main

raise SystemExit(main())
