"""eqopt.losses (Optax: `optax.losses`)."""
