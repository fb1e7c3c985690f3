"""python -m bench._memory engine|torch SIZE LAYER DEVICE: print the bytes the first evaluation
adds to this fresh process's peak (bench._common.peak_bytes runs it): from after the net's
weights and the images are made, through the target's forward pass and one evaluation, so
everything a run keeps for the network (the engine's Winograd weights and scratch, PyTorch's
buffers) is counted, not only the pass. Each contender's code is loaded first, by one
evaluation of another net on a 32 px image."""
import sys

from engine import backend

from ._common import engine_evaluation, torch_evaluation


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def _evaluation(contender, size, layer, device, seed):
    """(fn, what it holds): the holdings are kept alive by the caller, so that nothing freed
    before the measurement is there for the measured evaluation to reuse unseen."""
    net, x0, x, fn = engine_evaluation(size, layer, device, seed)
    return (fn if contender == "engine" else torch_evaluation(net, x0, x, layer, device)), (net, x0, x, fn)


def main():
    contender, size, layer, device = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    # code first: one evaluation of another net on a 32 px image loads what each contender runs
    # (numba's compiled loops, PyTorch's kernels), which is not memory that grows with a run
    warm, held = _evaluation(contender, 32, layer, device, seed=1)
    warm()
    fn, _ = _evaluation(contender, size, layer, device, seed=0)
    if device == "gpu":
        cupy = backend.xp_for("gpu")
        pool = cupy.get_default_memory_pool()
        if contender == "torch":
            import torch
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            print(torch.cuda.max_memory_allocated() - before)
        else:
            cupy.cuda.Device().synchronize()
            pool.free_all_blocks()
            before = pool.total_bytes()  # what is held: weights, inputs
            fn()
            print(pool.total_bytes() - before)
        return
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current RSS
    before = _status("VmRSS:")
    fn()
    print(_status("VmHWM:") - before)


if __name__ == "__main__":
    main()
