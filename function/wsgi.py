"""WSGI entry point for Gunicorn."""

from function.app import create_app

app = create_app()
