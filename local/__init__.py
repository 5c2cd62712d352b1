"""The local cloud: moto backends, in-process Lambda, the API Gateway shim and the status-change rule."""
