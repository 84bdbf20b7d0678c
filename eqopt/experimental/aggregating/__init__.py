"""Per-example gradient aggregation: Optax's `optax.experimental.aggregating`."""
