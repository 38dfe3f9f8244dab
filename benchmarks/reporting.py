"""What every benchmark does with its result: print it as JSON and, given `--output FILE`, write it there too; and
the machine it was measured on, which every figure names."""

import json
import os
import platform
from pathlib import Path


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_name() -> str:
    """The CPU's model name (`/proc/cpuinfo`), else what `platform` knows."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_description() -> str:
    """Model name, cores, whether it has AMX (`amx_bf16`, where bf16 matmuls are fast) and int8 dot-product
    instructions (VNNI, AMX-INT8): e.g. "Intel(R) Xeon(R) Processor, 2 cores, no AMX, VNNI"."""
    flags = set(next((line.split(":", 1)[1].split() for line in _cpuinfo().splitlines() if line.startswith("flags")), []))
    int8 = [name for name, flag in (("VNNI", "avx512_vnni"), ("AVX-VNNI", "avx_vnni"), ("AMX-INT8", "amx_int8"))
            if flag in flags]
    return ", ".join([cpu_name(), f"{os.cpu_count()} cores", "AMX" if "amx_bf16" in flags else "no AMX", *int8])


def emit_json(result: dict, output: str | None = None) -> dict:
    """Print `result` as indented JSON and write it to `output` when given; returns `result`."""
    text = json.dumps(result, indent=1)
    print(text)
    if output:
        Path(output).write_text(text + "\n")
    return result
