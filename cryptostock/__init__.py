"""cryptostock."""
