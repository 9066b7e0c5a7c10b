"""The API's routers: market data (HTTP), the bar stream (WebSocket), health and metrics."""
