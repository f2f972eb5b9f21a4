"""m2mhub: a machine-to-machine platform."""

__version__ = "0.1.0"
