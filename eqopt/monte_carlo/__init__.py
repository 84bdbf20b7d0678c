"""eqopt.monte_carlo (Optax: `optax.monte_carlo`)."""
