"""The update campaign, run from its tables: the transition, step and command tables, the typed
record, the command facade, the view model, the workers (download, install, tick), the ECU
inventory and the report publisher (docs/host.md "Campaign states")."""
