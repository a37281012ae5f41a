"""``python -m otalink.host.tufclient``."""

from otalink.host.tufclient.client import main

raise SystemExit(main())
