"""The reproduction of Godfrey, Brown, Emerson, Kvinge, "On the Symmetries of Deep Learning
Models and their Internal Representations" (NeurIPS 2022) at laptop scale, on scikit-learn's
digits. The library never imports this package; run it with one command::

    python -m simmetrics.paper --out results/ [--docs docs] [--smoke]

- :mod:`simmetrics.paper.config`: :class:`~simmetrics.paper.config.ExperimentConfig`, every
  setting that decides the numbers (the full study, and the tiny smoke run of the tests);
- :mod:`simmetrics.paper.experiments`: the runs, model stitching (E1), the intertwiner sanity
  test (E2) and the metrics across seeds (E3), returning one JSON-serialisable result dict;
- :mod:`simmetrics.paper.report`: the markdown report and figures formatted from that dict,
  beside the paper's own numbers;
- :mod:`simmetrics.paper.reference`: the paper's reference implementations of its metrics;
- :mod:`simmetrics.paper.cli`: the command line (``__main__`` calls it).

Importing the package imports nothing else (no torch); the submodules are imported by name.
"""
