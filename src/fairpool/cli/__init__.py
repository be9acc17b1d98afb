"""Command line (Typer + Rich). Every command talks to the server through the Python client."""
