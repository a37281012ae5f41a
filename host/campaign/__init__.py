"""The update campaign: state machine, persistence, preconditions, scheduler, fleet, reports."""
