"""train_cpu_torch.py: PyTorch's CPU time per training iteration of Faceswap's Original and
Lightweight models, the side-by-side reference for bench/train_cpu.sh. The architectures and the
step (side A and side B through the shared encoder and their decoders, MAE, one Adam step with
lr 5e-5 and eps 1e-7) are those of ../shared/bench/faceswap_torch_bench.py, imported from there;
only the device differs. Prints one line per model: "torch MODEL BATCH MEDIAN_MS" (median of RUNS
iterations after one warm-up).
Usage: python3 train_cpu_torch.py SHARED_BENCH_DIR BATCH RUNS MODEL..."""
import os
import sys
import time

sys.path.insert(0, sys.argv[1])
import torch  # noqa: E402
import faceswap_torch_bench as ref  # noqa: E402


def measure(name, batch, runs):
    torch.manual_seed(0)
    model = ref.Swap(name)
    opt = torch.optim.Adam(model.parameters(), lr=5e-5, eps=1e-7)
    s = model.size
    a, b = torch.rand(batch, 3, s, s), torch.rand(batch, 3, s, s)

    def step():
        ra, rb = model(a, b)
        loss = (ra - a).abs().mean() + (rb - b).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocations, oneDNN primitive creation
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1000


def main():
    torch.set_num_threads(os.cpu_count())
    batch, runs = int(sys.argv[2]), int(sys.argv[3])
    for name in sys.argv[4:]:
        print(f"torch {name} {batch} {measure(name, batch, runs):.1f}", flush=True)


if __name__ == "__main__":
    main()
