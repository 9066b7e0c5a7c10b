"""collectors/exchanges."""
