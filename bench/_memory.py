"""python -m bench._memory engine|torch SIZE LAYER DEVICE: print the bytes one evaluation adds
to this fresh process's peak (bench._common.peak_bytes runs it)."""
import sys

from engine import backend

from ._common import engine_evaluation, torch_evaluation


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def main():
    contender, size, layer, device = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    net, x0, x, fn = engine_evaluation(size, layer, device)
    if contender == "torch":
        fn = torch_evaluation(net, x0, x, layer, device)
    if device == "gpu":
        cupy = backend.xp_for("gpu")
        pool = cupy.get_default_memory_pool()
        if contender == "torch":
            import torch
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            print(torch.cuda.max_memory_allocated() - before)
        else:
            # the target's forward (made with the objective) left blocks cached in the pool, which
            # the evaluation would reuse unseen: release them, so the pool grows by the whole peak
            cupy.cuda.Device().synchronize()
            pool.free_all_blocks()
            before = pool.total_bytes()  # what is still held: weights, target, inputs
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
