"""Pinned pure-Python libraries of the offline kit (see vendor.txt); not imported from here."""
