"""HTTP layer: thin Flask handlers over :mod:`connector.provisioning`."""
