"""The package version, in a module of its own so that importing it creates no cycle."""

__version__ = "0.1.0"
