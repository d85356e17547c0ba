"""What machine a figure was measured on, and its arithmetic limit, for the benchmark reports."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_info() -> dict:
    """Model name, cores, MHz and the SIMD width that bounds float32 multiply-accumulates per cycle."""
    name, mhz, flags = platform.machine(), 0.0, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and name == platform.machine():
                name = value.strip()
            elif key == "cpu MHz" and not mhz:
                mhz = float(value)
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    if "avx512f" in flags:
        fp32_macs_per_cycle = 32  # two 512-bit FMA units: 2 x 16 lanes
    elif "fma" in flags and "avx2" in flags:
        fp32_macs_per_cycle = 16  # two 256-bit FMA units: 2 x 8 lanes
    else:
        fp32_macs_per_cycle = 4
    cores = os.cpu_count() or 1
    return {"cpu": name, "cores": cores, "mhz": round(mhz), "fp32_macs_per_cycle": fp32_macs_per_cycle,
            "int8_vnni": "avx512_vnni" in flags or "avx_vnni" in flags,
            "peak_fp32_gmacs_per_core": round(mhz * fp32_macs_per_cycle / 1000, 1)}


def describe() -> str:
    info = cpu_info()
    return f"{info['cpu']}, {info['cores']} cores at ~{info['mhz']} MHz"
