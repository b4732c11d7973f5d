"""pixlive: self-hosted Pix checkout with live payment confirmation."""

__version__ = "0.1.0"
