"""eqopt.utils (Optax: `optax.utils`)."""
