"""Vehicle signals (COVESA VSS paths) the campaign's preconditions read."""
