"""eqopt.projections (Optax: `optax.projections`)."""
