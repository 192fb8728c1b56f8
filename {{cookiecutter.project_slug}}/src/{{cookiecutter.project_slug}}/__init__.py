"""{{ cookiecutter.project_slug }}: a ChatKit backend on FastAPI and PostgreSQL."""

__version__ = "0.1.0"
