"""The metric families, one short file each (the public classes are importable from
:mod:`simmetrics`).

- :mod:`.cka` linear CKA (biased, debiased) and :class:`~simmetrics.LinearCKA`;
  :mod:`.cka_gram` its n x n route for many pairs; :mod:`.kernel_cka` RBF kernels and
  :class:`~simmetrics.KernelCKA`; :mod:`.hsic` the HSIC estimators (Gram matrices, features,
  second moments).
- :mod:`.cca` mean CCA, SVCCA, PWCCA.
- :mod:`.shape` the generalized shape metric and orthogonal Procrustes; :mod:`.whitening` its
  partial whitening; :mod:`.procrustes` the rotation; :mod:`.alignment` what every centred
  alignment metric shares; :mod:`.matching` permutation and soft (optimal-transport) matching.
- :mod:`.rsa` RDMs and RSA; :mod:`.knn` mutual k-nearest neighbours.
- The intertwiner metrics of Godfrey et al. (NeurIPS 2022), invariant to exactly the
  intertwiner group G_sigma of an activation (:func:`simmetrics.intertwiner_group`) rather than
  the orthogonal group: :mod:`.intertwiner_groups` (group names, conv features),
  :mod:`.intertwiner_alignment` and :mod:`.intertwiner_procrustes` (G_sigma-Procrustes:
  canonicalise the diagonal part of the group, then solve the (signed) permutation exactly),
  :mod:`.intertwiner_kernel` and :mod:`.intertwiner_cka` (G_sigma-CKA: the unbiased HSIC of the
  paper's max-over-channels kernel). The paper's own loop formulations, used to check these,
  are in :mod:`simmetrics.paper.reference`, outside the library.
- Neighbourhoods: :mod:`.neighbourhood` (Jaccard, rank similarity, second-order cosine),
  :mod:`.cknna`; kernels and spectra: :mod:`.bures` (NBS, Bures distance), :mod:`.ensd`,
  :mod:`.riemannian`; prediction and dependence: :mod:`.prediction` (GULP, linear regression),
  :mod:`.dependence` (distance correlation), :mod:`.subspace` (eigenspace overlap); units and
  geometry: :mod:`.unit_matching`, :mod:`.rsm`, :mod:`.stress`; :mod:`.descriptive` (magnitude,
  concentricity, uniformity differences).
- Stochastic networks (inputs stimuli x repeats x neurons): :mod:`.stochastic_shape`.
"""
