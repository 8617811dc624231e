"""The ``canvascraft`` command line: an entry point beside flows/ (it may use tasks/ and the core; the core never
imports it)."""
