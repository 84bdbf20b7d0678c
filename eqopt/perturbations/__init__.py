"""eqopt.perturbations (Optax: `optax.perturbations`)."""
