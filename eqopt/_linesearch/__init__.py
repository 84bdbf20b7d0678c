"""Line searches: transformations that choose a step size by evaluating the objective.

Imported on first use (see `eqopt._LAZY_NAMES`), like the other sub-packages that
`import eqopt` does not need.
"""
