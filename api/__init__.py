"""The HTTP and WebSocket API over stored bars, indicators and trades: `api.app.create_app`."""
