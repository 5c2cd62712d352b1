"""Live runs: the stream function that numbers events and pushes them, and the WebSocket API's handler."""
