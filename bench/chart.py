"""The PNG charts of bench/: seqcore's speed relative to each peer, one bar per table row."""


def ratio_chart(labels, series, path, title):
    """A horizontal bar chart of peer_time / seqcore_time (> 1: seqcore faster) with the
    parity line. labels: one per row; series: {peer name: [ratio or None per row]}. Returns
    the path written, or None when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return None
    n, k = len(labels), len(series)
    height = 0.8 / max(k, 1)
    fig, ax = plt.subplots(figsize=(9, 0.32 * n * max(k, 1) + 1.5))
    for i, (name, values) in enumerate(series.items()):
        ys = [r + i * height for r in range(n)]
        ax.barh(ys, [v if v is not None else 0 for v in values], height=height, label=name)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks([r + height * (k - 1) / 2 for r in range(n)])
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ticks = [0.125, 0.25, 0.5, 1, 2, 4, 8]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("peer time / seqcore time (right of the line: seqcore faster)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
