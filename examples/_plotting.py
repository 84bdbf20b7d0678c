"""Saving the examples' figures under `examples/out/`; skipped if matplotlib is missing."""

import pathlib


def save_plot(name, draw, tag="[plot]"):
    """Draw a figure with `draw(pyplot) -> figure` and save it as `examples/out/<name>`.

    Without matplotlib (an optional extra), say so and return.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"{tag} matplotlib not installed; skipping the plot")
        return
    out = pathlib.Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig = draw(plt)
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=120)
    print(f"{tag} saved {path}")
