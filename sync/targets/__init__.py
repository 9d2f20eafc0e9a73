"""Directory targets: where the connector writes group membership."""
