"""Process-level settings for the training scripts."""

import ctypes
import ctypes.util
import os
import sys
import time

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def keep_freed_memory(mmap_threshold_mb: int = 512, trim_threshold_mb: int = 1024) -> bool:
    """Make glibc's malloc serve large tensors from its heap and keep freed memory instead of returning it to the
    system, so that each training step does not map, page-fault and unmap its large activations again.

    By default glibc gives every block above 32 MB its own mapping: on a 2-core CPU, copying a 65 MB tensor took 19 ms
    with the default and 5 ms with this setting, and the pretraining step ran 18% faster. The cost is that the process
    keeps the memory it freed. Returns False (and changes nothing) where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mapped = mallopt(M_MMAP_THRESHOLD, mmap_threshold_mb << 20)
    kept = mallopt(M_TRIM_THRESHOLD, trim_threshold_mb << 20)
    return bool(mapped and kept)


ONEDNN_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"


def widen_onednn_primitive_cache(capacity: int = 4096) -> int:
    """Let oneDNN keep `capacity` compiled primitives (its default is 1024) unless `ONEDNN_PRIMITIVE_CACHE_CAPACITY`
    is set already; returns the capacity in force. It counts only when set before the process's first oneDNN op.

    On CPUs with fast bf16, each bf16 matmul and convolution shape is a primitive compiled on first use, and a
    training step has dozens of them per batch length: with the default capacity, the pretraining step on the embedded
    corpus (33 batch lengths; small preset, bf16, 2-core Xeon with AMX) recompiled them at every step, 0.62 s per step,
    against 0.42 s once they were all kept (8192).
    """
    os.environ.setdefault(ONEDNN_CACHE_VARIABLE, str(capacity))
    return int(os.environ[ONEDNN_CACHE_VARIABLE])


def end_training(accelerator) -> None:
    """Finish an Accelerate run: trackers, then the process group, with no DDP wrapper left alive.

    A `DistributedDataParallel` wrapper that outlives `destroy_process_group` frees its reducer, and with it the gloo
    process group, when the script's locals go; one 2-process CPU run hung there in `~ProcessGroupGloo`. The caller
    drops its own references to the prepared model first; this drops Accelerate's and then ends the run.
    """
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    accelerator.end_training()


def _busy_and_total_jiffies(stat_text: str) -> tuple[int, int, int]:
    """(busy, total, cpus) clock ticks of all CPUs from `/proc/stat`: busy excludes idle and iowait."""
    lines = stat_text.splitlines()
    fields = [int(x) for x in lines[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return total - idle, total, max(cpus, 1)


def _own_jiffies(stat_text: str) -> int:
    """User + system clock ticks of this process (all its threads) from `/proc/self/stat`."""
    fields = stat_text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the whole line)


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


class CpuThreads:
    """torch's CPU threads, sized to the cores that other processes leave free, and re-sized as they come and go.

    Two torch threads on two cores, one of them shared with another busy process, run a step 6-10x slower than
    alone (measured on a 2-core Xeon): every parallel region waits for the thread that gets half a core, while the
    other spins. One thread on the free core is then faster than two. So with `requested=None` (the default of the
    scripts' `--cpu_threads`) a single-process CPU run uses `round(cores - other processes' busy cores)` threads (at
    least 1, at most the cores), measured from `/proc/stat` minus this process's own CPU time, at start (over
    `probe_seconds`) and again every `check_every` seconds from `update()`. A fixed `requested` count, several
    processes (whose siblings would count as "others") or a system without `/proc` keep `cores / processes`.
    """

    def __init__(self, requested: int | None = None, num_processes: int = 1, check_every: float = 20.0,
                 probe_seconds: float = 0.25, read=_read, clock=time.monotonic, sleep=time.sleep,
                 set_threads=None):
        self.read, self.clock, self.check_every = read, clock, check_every
        self.set_threads = set_threads or _set_torch_threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.cores = max(1, cores // max(1, num_processes))
        self.adaptive = requested is None and num_processes == 1 and self._snapshot() is not None
        self.threads = requested or self.cores
        self.set_threads(self.threads)
        self.last = self._snapshot() if self.adaptive else None
        self.last_time = clock()
        if self.adaptive and probe_seconds > 0:
            sleep(probe_seconds)
            self._measure()

    def _snapshot(self) -> tuple[int, int, int, int] | None:
        system, own = self.read("/proc/stat"), self.read("/proc/self/stat")
        if system is None or own is None:
            return None
        busy, total, cpus = _busy_and_total_jiffies(system)
        return busy, total, cpus, _own_jiffies(own)

    def _measure(self):
        now = self._snapshot()
        (busy0, total0, cpus, own0), (busy1, total1, _, own1) = self.last, now
        self.last, self.last_time = now, self.clock()
        interval = (total1 - total0) / cpus  # ticks per CPU
        if interval <= 0:
            return
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / interval  # busy cores of other processes
        threads = max(1, min(self.cores, round(self.cores - others)))
        if threads != self.threads:
            self.threads = threads
            self.set_threads(threads)

    def update(self) -> int:
        """Call once per step: re-sizes the threads every `check_every` seconds; returns the current count."""
        if self.adaptive and self.clock() - self.last_time >= self.check_every:
            self._measure()
        return self.threads

    def follow(self, optimizer) -> None:
        """Re-check after every step of `optimizer` (a torch optimizer's step post-hook)."""
        optimizer.register_step_post_hook(lambda *args: self.update())


def _set_torch_threads(count: int):
    import torch

    torch.set_num_threads(count)
