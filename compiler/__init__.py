"""netpolc: one statement of network intent, compiled to every plane, with proof."""

__version__ = "0.1.0"
