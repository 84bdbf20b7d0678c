"""eqopt.assignment (Optax: `optax.assignment`)."""
