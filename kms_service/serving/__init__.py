"""Serving: the command line, gunicorn, the WSGI entry point, TLS and the operability wiring."""
