"""``ocrforge serve``: the exported models as an HTTP service for other programs, with a page to try them.

``app`` (the FastAPI routes and the request limits), ``workers`` (the OCR processes behind them), ``images``
(an upload's checks and decoding), ``loadtest`` (served vs pooled images per second), ``static/index.html``
(the page at ``GET /``). Nothing here is imported by ``import ocrforge``.
"""
