"""HTTP and WebSocket routes, one module per resource; handlers stay thin."""
