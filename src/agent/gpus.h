// The GPUs of this node: found with NVML when the NVIDIA driver is there, or declared.
//
// NVML is loaded at run time (dlopen of libnvidia-ml.so.1), so building allot needs no NVIDIA
// package and the same binary runs on machines with and without GPUs.
//
//   StatusOr<GpuInventory> gpus = DiscoverGpus({.count = 8, .model = "H200"});  // declared
//   StatusOr<GpuInventory> found = DiscoverGpus({});                            // NVML
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace allot {

struct GpuDeclaration {
  int count = 0;      // > 0: emulate this many GPUs instead of asking NVML
  std::string model;  // with count: the model to report
};

struct GpuInventory {
  int count = 0;
  std::string model;               // "H200": the device name without its "NVIDIA " prefix
  std::vector<std::string> uuids;  // per GPU index, from NVML; empty when declared
  std::string source;              // "nvml" or "declared"
};

// Declared GPUs win when given; otherwise NVML must load and report at least one device, or the
// error says how to declare them.
StatusOr<GpuInventory> DiscoverGpus(const GpuDeclaration& declared);

// "NVIDIA H200" -> "H200"; "NVIDIA GeForce RTX 4090" -> "GeForce RTX 4090".
std::string GpuModelFromDeviceName(std::string_view name);

}  // namespace allot
