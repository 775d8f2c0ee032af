"""The result of :func:`simmetrics.compare_models`: :class:`ModelComparison`, one labelled
layer x layer matrix per metric, with ``to_frame`` (pandas), ``to_json`` and ``plot``."""

import json

import numpy as np

from .._core.registry import as_metric
from ..pairwise import LabelledMatrix

__all__ = ["ModelComparison"]


class ModelComparison:
    """What :func:`compare_models` returns: one L_a x L_b matrix per metric, labelled.

    Attributes
    ----------
    values : dict of str to LabelledMatrix
        ``values[metric]`` is the (L_a, L_b) float64 array (a
        :class:`simmetrics.pairwise.LabelledMatrix`: a numpy array with ``row_labels`` and
        ``col_labels``) of that metric between layer i of model_a and layer j of model_b; keys
        are the metric names as given (an instance's ``repr`` for a metric object).
    layers_a, layers_b : tuple of str
        The layer names, as ``named_modules()`` spells them (DataParallel's ``module.``
        prefix removed).
    metrics : dict of str to Metric
        The metric of each key (unfitted).
    streamed : dict of str to bool
        Whether the metric was accumulated from second moments (True) or computed on
        collected activations (False).
    names : (str, str)
        The two models' names (axis labels of :meth:`plot`).
    n_stimuli, n_rows : int
        Stimuli seen (sequences, for a transformer), and the rows they made (more with
        ``features="nchw"``, or ``tokens="tokens"`` / ``"words"``).
    features, tokens : str
        The options the rows were made with (``tokens`` None for non-token models).

    Examples
    --------
    >>> M = ModelComparison({"linear_cka": [[1.0, 0.5]]}, ["fc"], ["fc", "out"])
    >>> M.values["linear_cka"].col_labels, M.layers_a
    (('fc', 'out'), ('fc',))
    """

    def __init__(self, values, layers_a, layers_b, metrics=None, streamed=None,
                 names=("model_a", "model_b"), n_stimuli=None, n_rows=None, features="flatten",
                 tokens=None):
        self.layers_a, self.layers_b = tuple(layers_a), tuple(layers_b)
        self.values = {k: LabelledMatrix(v, self.layers_a, self.layers_b)
                       for k, v in values.items()}
        self.metrics = {k: as_metric(k) for k in values} if metrics is None else dict(metrics)
        self.streamed = dict(streamed or {})
        self.names = tuple(names)
        self.n_stimuli, self.n_rows, self.features = n_stimuli, n_rows, features
        self.tokens = tokens

    def _key(self, metric):
        if metric is None:
            return next(iter(self.values))
        key = metric if isinstance(metric, str) else repr(metric)
        if key not in self.values:
            raise KeyError(f"metric {key!r} was not computed; the comparison has "
                           f"{list(self.values)}")
        return key

    def __getitem__(self, metric):
        return self.values[self._key(metric)]

    def to_frame(self, metric=None):
        """``values[metric]`` (default: the first metric) as a ``pandas.DataFrame``: the
        layers of model_a as its index, those of model_b as its columns."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("ModelComparison.to_frame needs pandas, which is not installed: "
                              "pip install pandas (the matrices are in .values)") from None
        key = self._key(metric)
        frame = pd.DataFrame(np.asarray(self.values[key]).copy(), index=list(self.layers_a),
                             columns=list(self.layers_b))
        frame.index.name, frame.columns.name = self.names
        return frame

    def to_json(self):
        """The comparison as a JSON string (layers, names, metrics, and the matrices as lists)."""
        return json.dumps({
            "names": list(self.names), "layers_a": list(self.layers_a),
            "layers_b": list(self.layers_b), "features": self.features,
            "tokens": self.tokens,
            "n_stimuli": self.n_stimuli, "n_rows": self.n_rows,
            "streamed": self.streamed,
            "values": {k: np.asarray(v).tolist() for k, v in self.values.items()},
        })

    def _plot_options(self, key):
        """The defaults of :meth:`plot` for metric ``key``."""
        M, m = np.asarray(self.values[key]), self.metrics[key]
        low, high = (float(b) for b in m.bounds)
        return dict(
            vmin=low if np.isfinite(low) else float(M.min()),
            vmax=high if np.isfinite(high) else float(M.max()),
            cmap="viridis" if m.kind == "similarity" else "viridis_r",
            colorbar_label=f"{key} ({m.kind})", xlabel=self.names[1], ylabel=self.names[0],
        )

    def plot(self, metric=None, ax=None, **kwargs):
        """Heatmap of ``values[metric]`` (:func:`simmetrics.plot_similarity_matrix`).

        Defaults, each overridden by a keyword of that function: the colour range from the
        metric's ``bounds`` (a bound at infinity: the data's extreme on that side), so a flat
        0.85-0.92 matrix of a [0, 1] metric looks flat; ``"viridis"`` for a similarity,
        ``"viridis_r"`` for a distance (alike is bright for both); the colour bar labelled
        with the metric's key and kind; the models' names on the axes.
        """
        from ..plots import plot_similarity_matrix

        key = self._key(metric)
        options = self._plot_options(key)
        options.update(kwargs)
        return plot_similarity_matrix(self.values[key], ax=ax, **options)

    def plot_metrics(self, metrics=None, axes=None, **kwargs):
        """Heatmaps of several metrics side by side (default: every metric computed), on one
        colour scale: from the lowest to the highest of their ranges (each range as in
        :meth:`plot`), with one colour bar. The metrics must be of one kind (similarities, or
        distances), since one scale cannot show both the right way up. ``kwargs`` go to
        :func:`simmetrics.plot_similarity_matrix` for every panel.

        Returns
        -------
        list of matplotlib.axes.Axes
            One per metric.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> M = ModelComparison({"linear_cka": [[1.0, 0.5]], "rsa": [[0.9, 0.2]]}, ["fc"],
        ...                     ["fc", "out"])
        >>> axes = M.plot_metrics()
        >>> [ax.get_images()[0].get_clim() for ax in axes]
        [(-1.0, 1.0), (-1.0, 1.0)]
        >>> import matplotlib.pyplot as plt; plt.close("all")
        """
        from ..plots import panel_axes, plot_similarity_matrix

        keys = list(self.values) if metrics is None else [self._key(m) for m in metrics]
        if not keys:
            raise ValueError("metrics is empty: name at least one computed metric")
        kinds = {self.metrics[k].kind for k in keys}
        if len(kinds) > 1:
            listed = ", ".join(f"{k} ({self.metrics[k].kind})" for k in keys)
            raise ValueError(f"metrics mixes similarities and distances ({listed}); one colour "
                             "scale cannot show both: plot each kind in its own call")
        (kind,) = kinds
        options = [self._plot_options(k) for k in keys]
        low, high = min(o["vmin"] for o in options), max(o["vmax"] for o in options)
        if axes is None:
            axes = panel_axes(len(keys), max(3.5, 0.7 * len(self.layers_b) + 1.5),
                              max(3.0, 0.55 * len(self.layers_a) + 1.2))
        axes = list(axes)
        if len(axes) != len(keys):
            raise ValueError(f"axes has {len(axes)} axes for {len(keys)} metrics")
        for i, (key, ax, opts) in enumerate(zip(keys, axes, options)):
            last = i == len(keys) - 1  # one colour bar, beside the last panel
            opts.update(vmin=low, vmax=high, title=key, colorbar=last,
                        colorbar_label=f"{', '.join(keys)} ({kind})" if last else None)
            opts.update(kwargs)
            plot_similarity_matrix(self.values[key], ax=ax, **opts)
        return axes

    def __repr__(self):
        return (f"ModelComparison({self.names[0]} x {self.names[1]}: "
                f"{len(self.layers_a)} x {len(self.layers_b)} layers, metrics "
                f"{list(self.values)}, {self.n_stimuli} stimuli)")
