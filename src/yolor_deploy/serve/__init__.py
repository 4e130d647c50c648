"""`yolor-deploy serve`: an HTTP detection service (FastAPI + uvicorn) with dynamic batching, limits and metrics.

Layout: `inputs` (request parameters and image bytes, checked), `batcher` (dynamic batching), `engine` (the
`Engine` protocol and `LocalEngine`, a Detector behind the batcher), `app` (`create_app(engine, settings)`: the
HTTP API), `middleware` (body cap, request metrics), `metrics` (Prometheus), `run` (`serve(...)`: uvicorn,
graceful shutdown). Needs the `serve` extra; imports no torch (a `.pt` model goes through the runtime's torch
backend, as `predict`). Nothing is imported here, so `import yolor_deploy.serve.inputs` stays light.
"""
