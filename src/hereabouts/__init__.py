"""hereabouts: signed, private presence for peer networks and websites."""

__version__ = "0.1.0"
