"""Tools for torch models (this package needs torch; ``import simmetrics`` does not import it).

- :mod:`simmetrics.nn.extract`: activations of chosen modules through forward hooks
  (:func:`~simmetrics.nn.extract.extract_activations`, and
  :func:`~simmetrics.nn.extract.extract_pair` for two models on the same stimuli);
- :mod:`simmetrics.nn.stitch_layers`: the stitching layers (full, low-rank, orthogonal,
  intertwiner, fixed) and their constructors, including the direct matching;
- :mod:`simmetrics.nn.stitching`: training and evaluating a stitch, and the stitching penalty
  of two models cut at a layer;
- :mod:`simmetrics.nn.compare`: two models compared layer by layer on the same batches in one
  pass (:func:`~simmetrics.nn.compare.compare_models`, exported as ``simmetrics.compare_models``);
- :mod:`simmetrics.nn.digits`: the small digits models shared by the demo and the paper's
  reproduction (data split, seeded MLPs, training, hidden representations, accuracy).
"""
