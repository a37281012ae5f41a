"""The campaign's workers, one thread each, level-triggered on the persisted state: the
downloader, the installer and the ticker (checks, auto-resume, scheduler, report outbox)."""
