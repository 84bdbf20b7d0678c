"""Saving the examples' loss curves and figures under `examples/out/` (figures skipped if
matplotlib is missing)."""

import pathlib

import numpy as np


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


def save_loss_curves(stem, curves, steps, ylabel, title):
    """Save `curves` (a dict of per-step losses) as `examples/out/<stem>.npz`, and plot
    them in `examples/out/<stem>.png` on a log scale, each smoothed by a moving average
    over `steps // 50` steps."""
    out = pathlib.Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    np.savez(out / f"{stem}.npz", **{k: np.asarray(v) for k, v in curves.items()})
    print(f"[curves] saved {out / stem}.npz")

    def draw(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        window = max(1, steps // 50)
        for label, losses in curves.items():
            smooth = np.convolve(np.asarray(losses), np.ones(window) / window, "valid")
            ax.plot(smooth, label=label)
        ax.set(xlabel="step", ylabel=ylabel, yscale="log", title=title)
        ax.legend()
        return fig

    save_plot(f"{stem}.png", draw)
