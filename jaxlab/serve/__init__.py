"""`jaxlab serve`: an HTTP server (FastAPI on uvicorn) answering predictions of a
trained model, with dynamic batching.

  sources.py   where the model comes from: a workdir's checkpoint or an export directory
  inputs.py    request payloads (image, WAV, text, JSON arrays) as model batches
  json_body.py JSON request bodies, refused with a 4xx before parsing when nested too deep
  batcher.py   the model thread: requests grouped into a few fixed, pre-compiled sizes
  generate.py  POST /v1/generate: a language model's tokens as server-sent events
  app.py       the routes, and the one-line JSON errors
  server.py    start-up and shutdown: the whole server, run by `jaxlab serve`
  docs.py      /docs and /redoc, their JavaScript served from an installed package
  listener.py  the socket, bound before start-up (a port in use fails at once)

Start-up binds the port, loads the model, compiles every batch size, and only then
listens on the port.
SIGTERM (or Ctrl+C) stops accepting connections, lets the requests in flight finish,
and exits 0. Needs `pip install 'jaxlab[serve]'` (the base install does not).
"""

