"""Figures: layer x layer similarity heatmaps, the invariance table, stitching penalties.

matplotlib is an optional dependency (``pip install "simmetrics[plot]"``); it is imported only
when a function here is called. Every function draws on ``ax`` when given (otherwise on a new
figure from ``matplotlib.pyplot.subplots``) and returns the axes, so the figure is
``ax.figure`` (save it with ``ax.figure.savefig("out.png")``).
"""

import numpy as np

__all__ = ["plot_similarity_matrix", "plot_invariance_table", "plot_stitching_penalties"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib, which is not installed: pip install 'simmetrics[plot]'"
        ) from None
    return plt


def _axes(ax, figsize):
    if ax is not None:
        return ax
    return _pyplot().subplots(figsize=figsize, layout="constrained")[1]


def panel_axes(count, width, height):
    """A new figure of ``count`` axes side by side, each about ``width`` x ``height`` inches
    (for several heatmaps on one colour scale: :meth:`ModelComparison.plot_metrics`)."""
    return list(_pyplot().subplots(1, count, figsize=(width * count, height),
                                   layout="constrained", squeeze=False)[1][0])


def _labels(labels, count, name):
    if labels is None:
        return [str(i) for i in range(count)]
    labels = [str(x) for x in labels]
    if len(labels) != count:
        raise ValueError(f"{name} has {len(labels)} labels for {count} {name.split('_')[0]}s")
    return labels


def _carried(M, attribute, frame_attribute):
    """The labels ``M`` carries: a LabelledMatrix's, or a pandas DataFrame's index / columns."""
    labels = getattr(M, attribute, None)
    if labels is None and type(M).__module__.startswith("pandas"):
        labels = getattr(M, frame_attribute, None)
    return None if labels is None else [str(x) for x in labels]


def plot_similarity_matrix(M, row_labels=None, col_labels=None, ax=None, annotate=True,
                           fmt=".2f", cmap="viridis", vmin=None, vmax=None, title=None,
                           colorbar=True, colorbar_label=None, xlabel=None, ylabel=None,
                           mask_upper=False):
    """Heatmap of a matrix of metric values (e.g. from :func:`simmetrics.pairwise`).

    Parameters
    ----------
    M : array-like, shape (n_rows, n_cols)
        Finite values: e.g. the result of :func:`simmetrics.pairwise`, whose labels (a
        :class:`simmetrics.pairwise.LabelledMatrix`, from a dict of representations) are the
        default tick labels, or a pandas DataFrame (its index and columns are).
    row_labels, col_labels : list of str, optional
        Tick labels (default: the labels ``M`` carries, else 0, 1, ...).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.
    annotate : bool, default True
        Write each value in its cell (with ``fmt``), in black or white for contrast.
    fmt : str, default ".2f"
    cmap : str or Colormap, default "viridis"
        For a distance, "viridis_r" keeps "alike" bright.
    vmin, vmax : float, optional
        Colour scale limits (default: the data range).
    title : str, optional
    colorbar : bool, default True
    colorbar_label : str, optional
        Text beside the colour bar (e.g. the metric's name and kind).
    xlabel, ylabel : str, optional
        Axis labels (e.g. the names of the models whose layers are the columns and rows).
    mask_upper : bool, default False
        Leave the cells above the diagonal blank (j > i), for a symmetric matrix of one set of
        layers against itself, which they repeat.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = plot_similarity_matrix([[1.0, 0.4], [0.4, 1.0]], ["conv1", "fc"], ["conv1", "fc"])
    >>> [t.get_text() for t in ax.texts]
    ['1.00', '0.40', '0.40', '1.00']
    >>> ax2 = plot_similarity_matrix([[1.0, 0.4], [0.4, 1.0]], mask_upper=True)
    >>> [t.get_text() for t in ax2.texts]
    ['1.00', '0.40', '1.00']
    >>> import matplotlib.pyplot as plt; plt.close("all")
    """
    if row_labels is None:
        row_labels = _carried(M, "row_labels", "index")
    if col_labels is None:
        col_labels = _carried(M, "col_labels", "columns")
    M = np.asarray(M, dtype=float)
    if M.ndim != 2 or M.size == 0:
        raise ValueError(f"M must be a non-empty 2-D matrix, got shape {M.shape}")
    if not np.isfinite(M).all():
        raise ValueError("M contains NaN or infinite values")
    rows = _labels(row_labels, M.shape[0], "row_labels")
    cols = _labels(col_labels, M.shape[1], "col_labels")
    if not isinstance(mask_upper, bool):
        raise TypeError(f"mask_upper must be True or False, got {mask_upper!r}")
    hidden = np.triu(np.ones(M.shape, dtype=bool), k=1) if mask_upper \
        else np.zeros(M.shape, dtype=bool)
    ax = _axes(ax, (max(3.5, 0.7 * M.shape[1] + 2.0), max(3.0, 0.55 * M.shape[0] + 1.2)))
    image = ax.imshow(np.ma.masked_array(M, hidden), cmap=cmap, vmin=vmin, vmax=vmax,
                      aspect="auto")
    ax.set_xticks(range(M.shape[1]), cols, rotation=45 if max(map(len, cols)) > 4 else 0,
                  ha="right" if max(map(len, cols)) > 4 else "center")
    ax.set_yticks(range(M.shape[0]), rows)
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax)
        if colorbar_label:
            bar.set_label(colorbar_label)
    if annotate:
        for (i, j), value in np.ndenumerate(M):
            if hidden[i, j]:
                continue
            r, g, b, _ = image.cmap(image.norm(value))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    return ax


def plot_invariance_table(table, ax=None, title=None):
    """The measured invariance table as a grid: metrics down, groups across.

    A cell reads "yes" (green) when the metric's value was measured invariant to the group,
    "no" (grey) otherwise; a cell where the measurement disagrees with the metric's declared
    ``invariances`` is red and marked with "!".

    Parameters
    ----------
    table : simmetrics.invariance.InvarianceTable
        From :func:`simmetrics.invariance.invariance_table`.
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from simmetrics.invariance import invariance_table
    >>> ax = plot_invariance_table(invariance_table(["linear_cka"], ["orthogonal", "permutation",
    ...                                                             "scaled_permutation"]))
    >>> [t.get_text() for t in ax.texts]
    ['yes', 'yes', 'no']
    >>> import matplotlib.pyplot as plt; plt.close(ax.figure)
    """
    rows = getattr(table, "rows", None)
    if rows is None:
        raise TypeError(f"table must be an InvarianceTable, got {type(table).__name__}")
    if not rows:
        raise ValueError("table has no rows")
    _pyplot()  # a clear ImportError when matplotlib is missing
    from matplotlib.colors import ListedColormap

    metrics = list(dict.fromkeys(r.metric for r in rows))
    groups = list(dict.fromkeys(r.group for r in rows))
    codes = np.full((len(metrics), len(groups)), np.nan)  # 0 no, 1 yes, 2 disagreement
    cells = {}
    for r in rows:
        i, j = metrics.index(r.metric), groups.index(r.group)
        codes[i, j] = 2 if not r.agrees else float(r.measured)
        cells[i, j] = ("yes" if r.measured else "no") + ("" if r.agrees else " !")
    ax = _axes(ax, (1.0 * len(groups) + 3.0, 0.4 * len(metrics) + 1.8))
    colours = ListedColormap(["#e0e0e0", "#7fc97f", "#f0027f"])
    ax.imshow(np.ma.masked_invalid(codes), cmap=colours, vmin=0, vmax=2, aspect="auto")
    for (i, j), text in cells.items():
        ax.text(j, i, text, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(groups)), [g.replace("_", " ") for g in groups], rotation=35,
                  ha="right")
    ax.set_yticks(range(len(metrics)), metrics)
    ax.set_xticks(np.arange(len(groups) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(metrics) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    ax.set_title(title or "measured invariance (! = differs from the declaration)")
    return ax


def _mean_std(label, value):
    """(mean, std) of one entry: a number, a (mean, std) pair, an object with a ``penalty``
    attribute (a :class:`simmetrics.nn.stitching.StitchResult`) or a list of such objects."""
    if hasattr(value, "penalty"):
        value = float(value.penalty)
    elif isinstance(value, (list, tuple)) and value and all(hasattr(v, "penalty") for v in value):
        runs = np.array([float(v.penalty) for v in value])
        value = (runs.mean(), runs.std(ddof=1) if len(runs) > 1 else 0.0)
    try:
        pair = np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        pair = np.array([np.nan])
    if pair.ndim != 1 or len(pair) not in (1, 2) or not np.isfinite(pair).all():
        raise ValueError(
            f"penalties[{label!r}] must be a finite number, a (mean, std) pair or stitching "
            f"results, got {value!r}"
        )
    return pair[0], (pair[1] if len(pair) == 2 else 0.0)


def plot_stitching_penalties(penalties, ax=None, ylabel="stitching penalty", title=None,
                             annotate=True, fmt=".3f"):
    """Bar chart of stitching penalties (or any per-condition number), with error bars.

    Parameters
    ----------
    penalties : dict or list
        A dict of label -> value, one bar per entry in the dict's order, where a value is a
        number, a (mean, std) pair (an error bar of +- std), a
        :class:`simmetrics.nn.stitching.StitchResult` or a list of them (mean +- sample standard
        deviation of their ``penalty``, e.g. over seeds). A plain list of stitching results is
        grouped by their ``kind``.
    ax : matplotlib.axes.Axes, optional
    ylabel : str, default "stitching penalty"
    title : str, optional
    annotate : bool, default True
        Write each mean above its bar.
    fmt : str, default ".3f"

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = plot_stitching_penalties({"identity": 0.01, "permutation": (0.02, 0.005),
    ...                                "orthogonal": (0.15, 0.03)})
    >>> len(ax.patches), [t.get_text() for t in ax.texts]
    (3, ['0.010', '0.020', '0.150'])
    >>> import matplotlib.pyplot as plt; plt.close(ax.figure)
    """
    if isinstance(penalties, (list, tuple)) and penalties and all(
            hasattr(r, "penalty") and hasattr(r, "kind") for r in penalties):
        grouped = {}
        for result in penalties:
            grouped.setdefault(str(result.kind), []).append(result)
        penalties = grouped
    if not isinstance(penalties, dict) or not penalties:
        raise ValueError("penalties must be a non-empty dict of label -> value or (mean, std), "
                         "or a list of stitching results")
    means, stds = zip(*(_mean_std(label, value) for label, value in penalties.items()))
    labels = [str(k) for k in penalties]
    ax = _axes(ax, (max(3.5, 0.8 * len(labels) + 1.5), 3.5))
    has_err = any(s > 0 for s in stds)
    bars = ax.bar(range(len(labels)), means, yerr=stds if has_err else None, capsize=4,
                  color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels,
                  rotation=30 if max(map(len, labels)) > 6 else 0,
                  ha="right" if max(map(len, labels)) > 6 else "center")
    ax.set_ylabel(ylabel)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.margins(y=0.15)  # room for the annotations
    if title:
        ax.set_title(title)
    if annotate:
        for bar, mean, std in zip(bars, means, stds):
            top = mean + std if mean >= 0 else mean - std
            ax.text(bar.get_x() + bar.get_width() / 2, top, format(mean, fmt), ha="center",
                    va="bottom" if mean >= 0 else "top", fontsize=8)
    return ax
