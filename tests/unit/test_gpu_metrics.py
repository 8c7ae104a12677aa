"""GpuCollector: NVML readings as gauges, and silence when NVML is unusable."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from consumer.gpu_metrics import GpuCollector

LABELS = {"worker": "w0", "gpu": "1"}


class NVMLError(Exception):
    pass


@dataclass
class Utilization:
    gpu: int
    memory: int


@dataclass
class Memory:
    total: int
    free: int
    used: int


class FakeNvml(types.ModuleType):
    """The slice of pynvml the collector uses, for GPU 1 of a two-GPU host."""

    def __init__(self, *, power: bool = True) -> None:
        super().__init__("pynvml")
        self.init_calls = 0
        self.power = power

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        self.init_calls += 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:  # noqa: N802
        if index > 1:
            raise NVMLError("Invalid Argument")
        return f"handle-{index}"

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:  # noqa: N802
        return f"handle-{uuid}"

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> Utilization:  # noqa: N802
        assert handle in ("handle-1", "handle-GPU-abc")
        return Utilization(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> Memory:  # noqa: N802
        return Memory(total=80 * 2**30, free=20 * 2**30, used=60 * 2**30)

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:  # noqa: N802
        if not self.power:
            raise NVMLError("Not Supported")
        return 312_500  # milliwatts


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    module = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def registry_with(collector: GpuCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_reports_the_bound_gpu_in_base_units(fake_nvml: FakeNvml) -> None:
    registry = registry_with(GpuCollector("w0", "1"))

    assert registry.get_sample_value("evalstream_gpu_utilization_ratio", LABELS) == 0.87
    assert registry.get_sample_value("evalstream_gpu_memory_used_bytes", LABELS) == 60 * 2**30
    assert registry.get_sample_value("evalstream_gpu_memory_total_bytes", LABELS) == 80 * 2**30
    assert registry.get_sample_value("evalstream_gpu_power_watts", LABELS) == 312.5


def test_nvml_is_initialised_once_on_the_first_scrape(fake_nvml: FakeNvml) -> None:
    registry = registry_with(GpuCollector("w0", "1"))
    assert fake_nvml.init_calls == 0  # registration does not touch NVML

    generate_latest(registry)
    generate_latest(registry)

    assert fake_nvml.init_calls == 1


def test_a_uuid_selects_the_gpu_by_uuid(fake_nvml: FakeNvml) -> None:
    registry = registry_with(GpuCollector("w0", "GPU-abc"))

    labels = {"worker": "w0", "gpu": "GPU-abc"}
    assert registry.get_sample_value("evalstream_gpu_utilization_ratio", labels) == 0.87


def test_a_value_nvml_cannot_read_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(power=False))
    registry = registry_with(GpuCollector("w0", "1"))

    assert registry.get_sample_value("evalstream_gpu_power_watts", LABELS) is None
    assert registry.get_sample_value("evalstream_gpu_memory_used_bytes", LABELS) == 60 * 2**30


def test_absent_nvml_yields_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes the import raise ImportError
    collector = GpuCollector("w0", "0")

    assert list(collector.collect()) == []
    assert b"evalstream_gpu" not in generate_latest(registry_with(collector))


def test_a_missing_gpu_yields_nothing(fake_nvml: FakeNvml) -> None:
    collector = GpuCollector("w0", "7")

    assert list(collector.collect()) == []


def test_a_worker_without_a_gpu_never_loads_nvml() -> None:
    def load() -> types.ModuleType:
        raise AssertionError("NVML loaded for a worker without a GPU")

    collector = GpuCollector("w0", None, load_nvml=load)

    assert list(collector.collect()) == []
