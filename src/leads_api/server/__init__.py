"""The HTTP server under the app: uvicorn's HTTP/1.1 protocol with limits and timeouts."""
