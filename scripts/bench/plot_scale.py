"""Plots the scaling table of BENCHMARKS.md (the numbers scripts/bench-scale.sh printed) as one SVG:
replay + ingest rate, peak RSS of each process, and the store's bytes per event, against the scale.
Usage: python plot_scale.py <out.svg>  (needs matplotlib)."""
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt

scale = [1, 10, 100]
# 10x and 100x with the shared write buffer (BENCHMARKS.md).
lines_per_s = [233_721, 232_039, 151_926]
rss = {"replay": [175, 174, 175], "ingest": [96, 246, 523], "serve": [82, 267, 1355]}
bytes_per_event = [26.0, 18.4, 7.0]

fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
axes[0].plot(scale, [x / 1000 for x in lines_per_s], "o-")
axes[0].axhline(250, ls="--", c="grey", label="goal")
axes[0].set(xscale="log", title="replay + ingest", ylabel="thousand lines/s", ylim=(0, 300))
axes[0].legend()
for name, values in rss.items():
    xs = [s for s, v in zip(scale, values) if v is not None]
    axes[1].plot(xs, [v for v in values if v is not None], "o-", label=name)
axes[1].set(xscale="log", yscale="log", title="peak RSS", ylabel="MB")
axes[1].legend()
axes[2].plot(scale, bytes_per_event, "o-")
axes[2].axhline(40, ls="--", c="grey", label="goal")
axes[2].set(xscale="log", title="store on disk", ylabel="bytes per event", ylim=(0, 50))
axes[2].legend()
for ax in axes:
    ax.set_xlabel("scale (x the real data)")
fig.tight_layout()
fig.savefig(sys.argv[1])
