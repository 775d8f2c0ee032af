"""Issue 16: ``simmetrics.compare_models`` against ckatorch and torch-cka, two CNNs, one run.

Two ResNet-style CNNs defined here (3 stages, basic residual blocks, a /4 stem; built with
``torch.manual_seed``; evaluation mode) see the same 10,000 random 3 x 32 x 32 images through
one DataLoader (batch 500, not shuffled, so every implementation sees the same batches); the
8 residual-block outputs of each model are the layers (flattened: one row per image), and each
implementation gives the 8 x 8 matrix of linear CKA:

- ``simmetrics``: ``compare_models(a, b, loader, layers_a, layers_b, metrics=("linear_cka",))``,
  one pass, exact second moments per layer pair (X'X, Y'Y, X'Y merged batch by batch): the
  **biased linear CKA of all 10,000 rows** (Kornblith et al. 2019), never an n x n matrix;
- ``simmetrics MinibatchCKA``: ``simmetrics.MinibatchCKA`` per layer pair fed by forward hooks
  (compare_models has no minibatch estimator): the **minibatch CKA of Nguyen, Raghu, Kornblith,
  ICLR 2021, eq. 3** (unbiased HSIC_1 averaged over the batches, then the ratio), the estimator
  both peers compute, so their values are checked against it;
- ``torch-cka 0.21``: its one call ``CKA(model1, model2, model1_layers=..., model2_layers=...)``
  then ``.compare(loader)``: per batch the n_b x n_b Grams (float32; L recomputed for every
  pair), HSIC_1 through K L (n_b^3 per HSIC), Nguyen's minibatch CKA;
- ``ckatorch 1.0.3``: its one call ``CKA(model_a, model_b, layers, second_layers)(loader)``
  **raises on these models** (``cka_batch`` uses ``torch.bmm``, which needs 3-D (bsz, tokens,
  features) outputs; a conv block gives 4-D ones; the script runs it on one small batch and
  prints the error). Timed instead is ckatorch's own unbiased ``hsic1`` on each batch's float64
  n_b x n_b Grams (one Gram per layer per batch, shared by the pairs), summed over the batches
  as Nguyen's eq. 3: what its one call computes for 3-D outputs, minus its quirk that each
  batch's matrix overwrites the previous one (``cka_epoch[i, j] = cka_batch(x, y)``: a pass
  keeps the last batch's values only).

Time (wall: ``time.perf_counter``; CPU: ``time.process_time``, every thread of the process) and
peak memory: **each implementation runs once in a fresh subprocess**; the peak is
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that process after the call (it sees torch's
allocations, which tracemalloc does not), and "beyond setup" subtracts the resident set size
just before the call (after imports, models and the 123 MB of images). Ratios are peer /
simmetrics within one run.

    python benchmarks/bench_compare.py             # full run (about 2 minutes here)
    python benchmarks/bench_compare.py --quick     # smoke test, seconds
    python benchmarks/bench_compare.py --threads 1 # torch limited to one thread
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings

import numpy as np

FULL = {"n": 10_000, "size": 32, "batch": 500}
QUICK = {"n": 600, "size": 32, "batch": 100}
#: (key, label, estimator); the order in which they run
IMPLEMENTATIONS = (
    ("simmetrics", "simmetrics compare_models", "biased linear CKA of all rows (exact, streamed)"),
    ("simmetrics_minibatch", "simmetrics MinibatchCKA (hooks)",
     "minibatch CKA, Nguyen et al. 2021 eq. 3"),
    ("torch_cka", "torch-cka CKA.compare", "minibatch CKA, Nguyen et al. 2021 eq. 3 (float32)"),
    ("ckatorch", "ckatorch hsic1 per batch", "minibatch CKA, Nguyen et al. 2021 eq. 3"),
)
#: largest |difference| to simmetrics' MinibatchCKA (float64 HSICs of the float32 activations):
#: ckatorch's hsic1 works in float64 like it; torch-cka computes the Grams and HSICs in float32
#: (unit roundoff 6e-8, sums over n_b^2 entries, a cancelling three-term formula): measured
#: 8.5e-4 at 600 images and 1.3e-3 at 10,000 against values of 0.01 to 0.1, where the same
#: torch-cka code run in float64 (torch.set_default_dtype) agrees to 2.4e-12
TOLERANCE = {"ckatorch": 1e-10, "torch_cka": 3e-3}


def resnet(blocks, seed, widths=(8, 16, 32), classes=10):
    """A small ResNet-style CNN (He et al. 2016's basic blocks): a stem (3 x 3 conv, stride 2,
    batch norm, ReLU, 2 x 2 max pool: 32 x 32 images to 8 x 8), then one stage per width
    (``blocks[s]`` residual blocks; the first block of stages 2 and 3 halves the positions and
    has a 1 x 1 conv shortcut), global average pooling and a linear head. Built after
    ``torch.manual_seed(seed)``, in evaluation mode. Returns (model, the block names)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))

    torch.manual_seed(seed)
    layers = [nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False),
                            nn.BatchNorm2d(widths[0]), nn.ReLU(), nn.MaxPool2d(2))]
    names, c_in = [], widths[0]
    for s, (width, count) in enumerate(zip(widths, blocks)):
        stage = []
        for k in range(count):
            stage.append(Block(c_in, width, 2 if (k == 0 and s > 0) else 1))
            c_in = width
            names.append(f"{s + 1}.{k}")
        layers.append(nn.Sequential(*stage))
    layers.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes)))
    model = nn.Sequential(*layers).eval()
    return model, names


def setup(sizes):
    """The two models, their layer names (module order) and the loader of random images."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    a, layers_a = resnet((3, 3, 2), seed=0)
    b, layers_b = resnet((2, 3, 3), seed=1)
    g = torch.Generator().manual_seed(2)
    images = torch.randn(sizes["n"], 3, sizes["size"], sizes["size"], generator=g)
    loader = DataLoader(TensorDataset(images), batch_size=sizes["batch"], shuffle=False)
    return a, b, layers_a, layers_b, loader


def hooked_batches(a, b, layers_a, layers_b, loader):
    """For each batch, (the float64 (n_b, d) block outputs of model_a, those of model_b),
    from forward hooks under ``torch.no_grad()`` (hooks removed afterwards)."""
    import torch

    current, handles = {}, []
    for model, layers, tag in ((a, layers_a, "a"), (b, layers_b, "b")):
        modules = dict(model.named_modules())
        for name in layers:
            def record(module, args, out, key=(tag, name)):
                current[key] = out.detach().flatten(1).double()
            handles.append(modules[name].register_forward_hook(record))
    try:
        with torch.no_grad():
            for (x, *_) in loader:
                current.clear()
                a(x)
                b(x)
                yield ([current[("a", n)] for n in layers_a],
                       [current[("b", n)] for n in layers_b])
    finally:
        for h in handles:
            h.remove()


def run_simmetrics(a, b, layers_a, layers_b, loader):
    from simmetrics import compare_models

    result = compare_models(a, b, loader, layers_a, layers_b, metrics=("linear_cka",))
    return np.asarray(result.values["linear_cka"], dtype=float)


def run_simmetrics_minibatch(a, b, layers_a, layers_b, loader):
    from simmetrics import MinibatchCKA

    est = [[MinibatchCKA() for _ in layers_b] for _ in layers_a]
    for feats_a, feats_b in hooked_batches(a, b, layers_a, layers_b, loader):
        for i, X in enumerate(feats_a):
            for j, Y in enumerate(feats_b):
                est[i][j].update(X, Y)
    return np.array([[e.value for e in row] for row in est])


def run_torch_cka(a, b, layers_a, layers_b, loader):
    from torch_cka import CKA

    with warnings.catch_warnings():  # "Dataloader for Model 2 is not given" (meant so)
        warnings.simplefilter("ignore")
        cka = CKA(a, b, model1_name="a", model2_name="b", model1_layers=layers_a,
                  model2_layers=layers_b, device="cpu")
        cka.compare(loader)
    return cka.export()["CKA"].double().numpy()


def run_ckatorch(a, b, layers_a, layers_b, loader):
    import torch
    from ckatorch.hsic import hsic1

    xy = torch.zeros(len(layers_a), len(layers_b), dtype=torch.float64)
    xx = torch.zeros(len(layers_a), dtype=torch.float64)
    yy = torch.zeros(len(layers_b), dtype=torch.float64)
    for feats_a, feats_b in hooked_batches(a, b, layers_a, layers_b, loader):
        K = [(X @ X.T)[None] for X in feats_a]  # (1, n_b, n_b): a "batch" of one Gram
        L = [(Y @ Y.T)[None] for Y in feats_b]
        for i, k in enumerate(K):
            xx[i] += hsic1(k, k)[0]
            for j, l in enumerate(L):
                xy[i, j] += hsic1(k, l)[0]
        for j, l in enumerate(L):
            yy[j] += hsic1(l, l)[0]
    return (xy / torch.sqrt(xx[:, None] * yy[None, :])).numpy()


PACKAGES = {"simmetrics": "simmetrics", "simmetrics_minibatch": "simmetrics",
            "torch_cka": "torch_cka", "ckatorch": "ckatorch"}
RUNS = {"simmetrics": run_simmetrics, "simmetrics_minibatch": run_simmetrics_minibatch,
        "torch_cka": run_torch_cka, "ckatorch": run_ckatorch}


def _rss():
    """The resident set size of this process now, in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(name, sizes, threads):
    """Run one implementation here (a fresh process): its matrix, times and memory as JSON."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    a, b, layers_a, layers_b, loader = setup(sizes)
    __import__(PACKAGES[name])  # imports are setup, not the call
    before = _rss()
    wall, cpu = time.perf_counter(), time.process_time()
    matrix = RUNS[name](a, b, layers_a, layers_b, loader)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"name": name, "wall": wall, "cpu": cpu, "peak": peak, "before": before,
            "threads": torch.get_num_threads(), "matrix": matrix.tolist()}


def measure(name, sizes, threads=0):
    """``child(name, ...)`` in a fresh Python process; its JSON result."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--n", str(sizes["n"]),
           "--size", str(sizes["size"]), "--batch", str(sizes["batch"]),
           "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ckatorch_one_call(sizes):
    """ckatorch's published one call on these models (one batch of 8 images): its error."""
    import torch
    from ckatorch import CKA
    from torch.utils.data import DataLoader, TensorDataset

    a, b, layers_a, layers_b, _ = setup({**sizes, "n": 8})
    loader = DataLoader(TensorDataset(torch.randn(8, 3, sizes["size"], sizes["size"])),
                        batch_size=8, shuffle=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import contextlib
            import io

            with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bars
                CKA(a, b, layers_a, layers_b, first_name="a", second_name="b")(loader, epochs=1)
        except Exception as exc:  # what it raises is the finding
            return f"{type(exc).__name__}: {exc}"
    return "ran"


def _mib(nbytes):
    return nbytes / 2 ** 20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 images, batch 100: seconds")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as installed)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for key in FULL:
        parser.add_argument(f"--{key}", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    sizes.update({k: getattr(args, k) for k in FULL if getattr(args, k) is not None})
    if args.child:
        print(json.dumps(child(args.child, sizes, args.threads)))
        return 0

    from importlib.metadata import version

    import torch

    import simmetrics

    start = time.perf_counter()
    print(f"simmetrics {simmetrics.__version__}, torch {torch.__version__}, ckatorch "
          f"{version('ckatorch')}, torch-cka {version('torch-cka')}, numpy {np.__version__}, "
          f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    a, b, layers_a, layers_b, loader = setup({**sizes, "n": 1})
    batches = hooked_batches(a, b, layers_a, layers_b, loader)
    first = next(batches)
    batches.close()  # the hooks off
    widths = [[int(X.shape[1]) for X in side] for side in first]
    print(f"{sizes['n']:,} random images 3 x {sizes['size']} x {sizes['size']}, DataLoader "
          f"batch {sizes['batch']} (not shuffled), {len(layers_a)} x {len(layers_b)} block "
          f"outputs, flattened")
    print(f"  model_a blocks {layers_a}: d = {widths[0]}")
    print(f"  model_b blocks {layers_b}: d = {widths[1]}")
    print("each implementation: one run in a fresh process; wall and CPU seconds of the call; "
          "peak = ru_maxrss of that process, beyond setup = peak - RSS just before the call")
    print(f"\nckatorch CKA(a, b, layers, second_layers)(loader) one call on these models: "
          f"{ckatorch_one_call(sizes)}")

    results = {}
    print(f"\n  {'implementation':<34} {'wall s':>8} {'CPU s':>8} {'peak MiB':>9} "
          f"{'beyond setup MiB':>17}  estimator")
    for key, label, estimator in IMPLEMENTATIONS:
        r = results[key] = measure(key, sizes, args.threads)
        print(f"  {label:<34} {r['wall']:8.2f} {r['cpu']:8.2f} {_mib(r['peak']):9.0f} "
              f"{_mib(r['peak'] - r['before']):17.0f}  {estimator}")
    print(f"  (torch threads in the runs: {results['simmetrics']['threads']})")

    ours = results["simmetrics"]
    ours_extra = max(ours["peak"] - ours["before"], 1)
    print("\nratios, peer / simmetrics compare_models (within this run)")
    for key, label, _ in IMPLEMENTATIONS[1:]:
        r = results[key]
        print(f"  {label:<34} wall {r['wall'] / ours['wall']:6.2f}   CPU "
              f"{r['cpu'] / ours['cpu']:6.2f}   memory beyond setup "
              f"{(r['peak'] - r['before']) / ours_extra:6.2f}")

    reference = np.array(results["simmetrics_minibatch"]["matrix"])
    print("\nchecks: the peers' matrices against simmetrics MinibatchCKA (the same estimator, "
          "the same batches)")
    for key, label, _ in IMPLEMENTATIONS[2:]:
        diff = float(np.max(np.abs(np.array(results[key]["matrix"]) - reference)))
        state = "agree" if diff <= TOLERANCE[key] else "DIFFER"
        print(f"  [{state}] {label}: max |difference| {diff:.2e} (tolerance {TOLERANCE[key]:g})")
    full = np.array(ours["matrix"])
    print("the full-data biased CKA (compare_models) is another estimator: max |compare_models "
          f"- MinibatchCKA| {float(np.max(np.abs(full - reference))):.3e}; the diagonal "
          f"(block i of a vs block i of b) {np.round(np.diag(full), 4).tolist()}")
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
