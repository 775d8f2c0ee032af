"""Private, shared layers under every metric (not public API; names may change).

- :mod:`.backend` the one place where numpy arrays and torch tensors differ;
- :mod:`.validation` the one validation path (arrays and tensors, layouts, zero variance);
- :mod:`.params` declarative parameter constraints; :mod:`.registry` names for metrics;
- :mod:`.memory` the memory budget; :mod:`.parallel` the parallel map and progress bar;
- :mod:`.linalg` small linear algebra (power-of-two rescaling, centring, bases);
  :mod:`.solvers` the Procrustes rotation and the assignment from a cross-product;
  :mod:`.linear_map` factored d x d maps;
- :mod:`.representation_moments` and :mod:`.factor` the statistics of one representation and
  the square roots of Gram matrices behind :mod:`simmetrics.moments`.
"""
