"""Board profiles, deployment of the ECU agent with mpremote, provisioning and device info."""
