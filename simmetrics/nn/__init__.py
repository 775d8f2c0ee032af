"""Tools for torch models (this package needs torch; ``import simmetrics`` does not import it).

- :mod:`simmetrics.nn.extract`: activations of chosen modules through forward hooks
  (:func:`~simmetrics.nn.extract.extract_activations`, and
  :func:`~simmetrics.nn.extract.extract_pair` for two models on the same stimuli);
- :mod:`simmetrics.nn.stitch_layers`: the stitching layers (full, low-rank, orthogonal,
  intertwiner, fixed) and their constructors, including the direct matching;
- :mod:`simmetrics.nn.stitching`: training and evaluating a stitch, and the stitching penalty
  of two models cut at a layer;
- :mod:`simmetrics.nn.compare`: two models compared layer by layer on the same batches in one
  pass (:func:`~simmetrics.nn.compare.compare_models`, exported as ``simmetrics.compare_models``;
  its result class in :mod:`simmetrics.nn.comparison`);
- :mod:`simmetrics.nn.tokens`: transformer outputs read as tensors, token rows with the
  attention mask applied, pooling per sequence, and sub-word tokens pooled to words by their
  character offsets (:func:`~simmetrics.nn.tokens.word_batch`) for models with different
  tokenizers;
- :mod:`simmetrics.nn.barrier`: linear mode connectivity, the loss and accuracy along the line
  between two networks' weights and its barrier, optionally after an alignment and RESET /
  REPAIR (:func:`~simmetrics.nn.barrier.loss_barrier`, exported as ``simmetrics.loss_barrier``;
  RESET and REPAIR themselves in :mod:`simmetrics.nn.repair`);
- :mod:`simmetrics.nn.align`: two models aligned by one element of each hidden layer's
  intertwiner group, by activation or weight matching (:func:`~simmetrics.nn.align.align_models`,
  exported as ``simmetrics.align_models``); :mod:`simmetrics.nn.align_spec`: the
  specification of which parameter dimensions belong to which hidden units
  (:func:`~simmetrics.nn.align_spec.spec_from_sequential`, residual streams);
- :mod:`simmetrics.nn.digits`: the small digits models shared by the demo and the paper's
  reproduction (data split, seeded MLPs, training, hidden representations, accuracy).
"""
