"""One run: the runner (wiring), the worker (one request), decide (pure), the pool."""
