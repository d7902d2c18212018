"""Simulated ``cupy.cuda.runtime``: device count, attributes and properties of an H100 SXM."""

from __future__ import annotations

from ... import _device as D
from ..._device import CUDARuntimeError  # noqa: F401

is_hip = False

cudaDevAttrMaxThreadsPerBlock = 1
cudaDevAttrMaxBlockDimX = 2
cudaDevAttrMaxBlockDimY = 3
cudaDevAttrMaxBlockDimZ = 4
cudaDevAttrMaxGridDimX = 5
cudaDevAttrMaxGridDimY = 6
cudaDevAttrMaxGridDimZ = 7
cudaDevAttrMaxSharedMemoryPerBlock = 8
cudaDevAttrTotalConstantMemory = 9
cudaDevAttrWarpSize = 10
cudaDevAttrMaxRegistersPerBlock = 12
cudaDevAttrClockRate = 13
cudaDevAttrMultiProcessorCount = 16
cudaDevAttrMemoryClockRate = 36
cudaDevAttrGlobalMemoryBusWidth = 37
cudaDevAttrL2CacheSize = 38
cudaDevAttrMaxThreadsPerMultiProcessor = 39
cudaDevAttrComputeCapabilityMajor = 75
cudaDevAttrComputeCapabilityMinor = 76
cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81
cudaDevAttrMaxRegistersPerMultiprocessor = 82
cudaDevAttrMaxSharedMemoryPerBlockOptin = 97

_VALUES = {
    "cudaDevAttrMaxThreadsPerBlock": D.MAX_THREADS_PER_BLOCK,
    "cudaDevAttrMaxBlockDimX": D.MAX_BLOCK_DIM[0],
    "cudaDevAttrMaxBlockDimY": D.MAX_BLOCK_DIM[1],
    "cudaDevAttrMaxBlockDimZ": D.MAX_BLOCK_DIM[2],
    "cudaDevAttrMaxGridDimX": D.MAX_GRID_DIM[0],
    "cudaDevAttrMaxGridDimY": D.MAX_GRID_DIM[1],
    "cudaDevAttrMaxGridDimZ": D.MAX_GRID_DIM[2],
    "cudaDevAttrMaxSharedMemoryPerBlock": D.SMEM_PER_BLOCK,
    "cudaDevAttrTotalConstantMemory": 65536,
    "cudaDevAttrWarpSize": D.WARP_SIZE,
    "cudaDevAttrMaxRegistersPerBlock": 65536,
    "cudaDevAttrClockRate": 1980000,
    "cudaDevAttrMultiProcessorCount": D.SM_COUNT,
    "cudaDevAttrMemoryClockRate": 2619000,
    "cudaDevAttrGlobalMemoryBusWidth": 5120,
    "cudaDevAttrL2CacheSize": D.L2_BYTES,
    "cudaDevAttrMaxThreadsPerMultiProcessor": 2048,
    "cudaDevAttrComputeCapabilityMajor": D.COMPUTE_CAPABILITY[0],
    "cudaDevAttrComputeCapabilityMinor": D.COMPUTE_CAPABILITY[1],
    "cudaDevAttrMaxSharedMemoryPerMultiprocessor": D.SMEM_PER_SM,
    "cudaDevAttrMaxRegistersPerMultiprocessor": 65536,
    "cudaDevAttrMaxSharedMemoryPerBlockOptin": D.SMEM_PER_BLOCK_OPTIN,
}


def _attributes() -> dict[str, int]:
    return dict(_VALUES)


_BY_CODE = {globals()[name]: value for name, value in _VALUES.items()}


def getDeviceCount() -> int:  # noqa: N802 - CuPy's names
    return D.DEVICE_COUNT


def getDevice() -> int:  # noqa: N802
    return D.state.device


def setDevice(device: int) -> None:  # noqa: N802
    D.state.device = D.check_device(device)


def deviceGetAttribute(attrib: int, device: int) -> int:  # noqa: N802
    D.check_device(device)
    if attrib not in _BY_CODE:
        raise CUDARuntimeError(D.ERR_INVALID_VALUE, "cudaErrorInvalidValue", "invalid argument")
    return _BY_CODE[attrib]


def getDeviceProperties(device: int) -> dict:  # noqa: N802
    D.check_device(device)
    return {
        "name": D.DEVICE_NAME.encode(),
        "totalGlobalMem": D.TOTAL_MEMORY,
        "sharedMemPerBlock": D.SMEM_PER_BLOCK,
        "sharedMemPerBlockOptin": D.SMEM_PER_BLOCK_OPTIN,
        "sharedMemPerMultiprocessor": D.SMEM_PER_SM,
        "regsPerBlock": 65536,
        "warpSize": D.WARP_SIZE,
        "maxThreadsPerBlock": D.MAX_THREADS_PER_BLOCK,
        "maxThreadsDim": D.MAX_BLOCK_DIM,
        "maxGridSize": D.MAX_GRID_DIM,
        "clockRate": 1980000,
        "memoryClockRate": 2619000,
        "memoryBusWidth": 5120,
        "totalConstMem": 65536,
        "major": D.COMPUTE_CAPABILITY[0],
        "minor": D.COMPUTE_CAPABILITY[1],
        "multiProcessorCount": D.SM_COUNT,
        "l2CacheSize": D.L2_BYTES,
        "maxThreadsPerMultiProcessor": 2048,
        "pciBusID": 0x18 + device,
        "pciDeviceID": 0,
        "pciDomainID": 0,
        "integrated": 0,
        "canMapHostMemory": 1,
        "concurrentKernels": 1,
        "ECCEnabled": 1,
    }


def runtimeGetVersion() -> int:  # noqa: N802
    return 13000


def driverGetVersion() -> int:  # noqa: N802
    return 13000


def deviceSynchronize() -> None:  # noqa: N802
    D.synchronize("cudaDeviceSynchronize")


def memGetInfo() -> tuple[int, int]:  # noqa: N802
    return D.TOTAL_MEMORY - D.pool.used, D.TOTAL_MEMORY
