"""Today's optimisers, as Optax's `optax.contrib` has them (Muon, Schedule-Free, Prodigy...).

Each has Optax's name, arguments, defaults and numbers, and is an Equinox Module whose
float hyperparameters are leaves (see the API pages for the update rules and papers).
"""
