"""GPU utilisation, memory and power of the worker's GPU, read from NVML at scrape time.

A worker is bound to one GPU (``Settings.gpu``); `GpuCollector` reports that GPU under
the same ``worker``/``gpu`` labels as the rest of the catalogue, so the dashboard puts
engine throughput and GPU load side by side. NVML comes from the optional ``gpu`` extra
(``nvidia-ml-py``, imported as ``pynvml``) and is loaded on the first scrape: without
the library, without a driver, or without that GPU the collector reports nothing and
never fails a scrape.

The GPU is looked up by NVML index (``nvidia-smi`` numbering, which ignores
``CUDA_VISIBLE_DEVICES``) or, for a value starting with ``GPU-``/``MIG-``, by UUID.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

_LABELS = ("worker", "gpu")
_FAMILIES = {
    "utilization": (
        "evalstream_gpu_utilization_ratio",
        "Share of the last sample period in which the GPU ran a kernel (0-1).",
    ),
    "memory_used": ("evalstream_gpu_memory_used_bytes", "GPU memory in use."),
    "memory_total": ("evalstream_gpu_memory_total_bytes", "GPU memory installed."),
    "power": ("evalstream_gpu_power_watts", "GPU power draw."),
}


def _import_pynvml() -> Any:
    return importlib.import_module("pynvml")


class GpuCollector(Collector):
    """Reports one GPU's utilisation, memory and power, or nothing when NVML is unusable.

    Args:
        worker: the worker id label.
        gpu: the GPU this worker is bound to (NVML index or UUID); None reports nothing.
        load_nvml: returns the ``pynvml`` module (tests pass a fake).
    """

    def __init__(
        self, worker: str, gpu: str | None, load_nvml: Callable[[], Any] = _import_pynvml
    ) -> None:
        self._labels = [worker, gpu or ""]
        self._gpu = gpu
        self._load_nvml = load_nvml
        self._lock = threading.Lock()
        self._nvml: Any = None
        self._handle: Any = None
        self._disabled = gpu is None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families this collector may report, without touching NVML at registration."""
        for name, doc in _FAMILIES.values():
            yield GaugeMetricFamily(name, doc, labels=_LABELS)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One reading per scrape; a value NVML cannot read (no power sensor) is left out."""
        with self._lock:
            handle = self._device()
            if handle is None:
                return
            values = self._read(handle)
        for key, value in values.items():
            name, doc = _FAMILIES[key]
            family = GaugeMetricFamily(name, doc, labels=_LABELS)
            family.add_metric(self._labels, value)
            yield family

    def _device(self) -> Any:
        """The NVML handle of the GPU, initialising NVML once; None when unusable."""
        if self._disabled or self._handle is not None:
            return self._handle
        try:
            nvml = self._load_nvml()
            nvml.nvmlInit()
            gpu = str(self._gpu)
            if gpu.startswith(("GPU-", "MIG-")):
                self._handle = nvml.nvmlDeviceGetHandleByUUID(gpu)
            else:
                self._handle = nvml.nvmlDeviceGetHandleByIndex(int(gpu))
            self._nvml = nvml
        except Exception as exc:  # no library, no driver, no such GPU: report nothing
            log.info("GPU metrics disabled for gpu=%s: %s", self._gpu, exc)
            self._disabled = True
            self._handle = None
        return self._handle

    def _read(self, handle: Any) -> dict[str, float]:
        nvml = self._nvml
        readers: dict[str, Callable[[], float]] = {
            "utilization": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0,
            "memory_used": lambda: float(nvml.nvmlDeviceGetMemoryInfo(handle).used),
            "memory_total": lambda: float(nvml.nvmlDeviceGetMemoryInfo(handle).total),
            # NVML reports milliwatts.
            "power": lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        }
        values: dict[str, float] = {}
        for key, read in readers.items():
            try:
                values[key] = read()
            except Exception as exc:  # NVMLError_NotSupported and friends: skip the value
                log.debug("NVML cannot read %s of gpu=%s: %s", key, self._gpu, exc)
        return values
