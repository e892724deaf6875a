"""wheelferry: carry a Python dependency set across an air gap."""

__version__ = "0.1.0"
