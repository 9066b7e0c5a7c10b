"""Storage adapters behind core.ports: MarketStore (PostgreSQL/TimescaleDB, SQLite), TradeBus (Redis
Streams, in-process) and MarketCache (Redis, in-memory). `storage.factory` picks them from settings."""
