"""Experimental APIs, as Optax's `optax.experimental` has them."""

from . import aggregating as aggregating
