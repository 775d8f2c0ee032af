"""The symmetry theory: groups acting on the neuron axis (:mod:`.groups`), the intertwiner
group of each activation (:mod:`.activations`, Godfrey et al. 2022, Table 1 extended), the
homogeneity defect (:mod:`.homogeneity`) and the weight-space action of an intertwiner on a
torch model (:mod:`.weights`, which imports torch when called).
"""
