"""eqopt.tree_utils (Optax: `optax.tree_utils`)."""
