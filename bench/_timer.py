"""python -m bench._timer engine|torch SIZE LAYER DEVICE: one contender's evaluation in a process
of its own (``bench._common.alternate_processes`` runs it). Builds the evaluation of
``bench._common`` (the same seed: the same weights and images for both contenders), runs it
twice, prints "ready", then times one evaluation per line read from stdin and prints its
milliseconds."""
import sys
import time

from ._common import engine_evaluation, sync, torch_evaluation


def main():
    contender, size, layer, device = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if contender not in ("engine", "torch"):
        sys.exit(f"bench._timer: {contender!r} is not a contender: engine or torch")
    net, x0, x, fn = engine_evaluation(size, layer, device)
    if contender == "torch":
        fn = torch_evaluation(net, x0, x, layer, device)
    fn()
    fn()
    print("ready", flush=True)
    for _ in sys.stdin:
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        print(f"{(time.perf_counter() - t) * 1e3:.3f}", flush=True)


if __name__ == "__main__":
    main()
