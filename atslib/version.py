"""The package version (also in pyproject.toml), recorded in every run directory."""
__version__ = "0.1.0"
