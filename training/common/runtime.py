"""Process-level settings for the training scripts."""

import ctypes
import ctypes.util
import sys

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


def end_training(accelerator) -> None:
    """Finish an Accelerate run: trackers, then the process group, with no DDP wrapper left alive.

    A `DistributedDataParallel` wrapper that outlives `destroy_process_group` frees its reducer, and with it the gloo
    process group, when the script's locals go; one 2-process CPU run hung there in `~ProcessGroupGloo`. The caller
    drops its own references to the prepared model first; this drops Accelerate's and then ends the run.
    """
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    accelerator.end_training()
