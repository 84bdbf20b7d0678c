"""eqopt.second_order (Optax: `optax.second_order`)."""
