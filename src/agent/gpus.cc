#include "agent/gpus.h"

#include <dlfcn.h>

#include <array>

namespace allot {
namespace {

// The few NVML entry points used, by their C signatures (nvml.h is not needed to build).
using NvmlDevice = void*;
using NvmlInit = int (*)();
using NvmlShutdown = int (*)();
using NvmlDeviceGetCount = int (*)(unsigned int*);
using NvmlDeviceGetHandleByIndex = int (*)(unsigned int, NvmlDevice*);
using NvmlDeviceGetString = int (*)(NvmlDevice, char*, unsigned int);
constexpr int kNvmlSuccess = 0;

StatusOr<GpuInventory> QueryNvml() {
  void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library) return NotFoundError("NVML is not available ({})", dlerror());
  auto symbol = [&](const char* name) { return dlsym(library, name); };
  auto init = reinterpret_cast<NvmlInit>(symbol("nvmlInit_v2"));
  auto shutdown = reinterpret_cast<NvmlShutdown>(symbol("nvmlShutdown"));
  auto get_count = reinterpret_cast<NvmlDeviceGetCount>(symbol("nvmlDeviceGetCount_v2"));
  auto get_handle = reinterpret_cast<NvmlDeviceGetHandleByIndex>(symbol("nvmlDeviceGetHandleByIndex_v2"));
  auto get_name = reinterpret_cast<NvmlDeviceGetString>(symbol("nvmlDeviceGetName"));
  auto get_uuid = reinterpret_cast<NvmlDeviceGetString>(symbol("nvmlDeviceGetUUID"));
  if (!init || !shutdown || !get_count || !get_handle || !get_name || !get_uuid) {
    dlclose(library);
    return NotFoundError("libnvidia-ml.so.1 lacks the NVML functions allot uses");
  }
  if (int status = init(); status != kNvmlSuccess) {
    dlclose(library);
    return NotFoundError("nvmlInit failed with status {}", status);
  }
  GpuInventory inventory{.source = "nvml"};
  unsigned int count = 0;
  Status result = OkStatus();
  if (get_count(&count) != kNvmlSuccess) result = NotFoundError("nvmlDeviceGetCount failed");
  for (unsigned int index = 0; result.ok() && index < count; ++index) {
    NvmlDevice device = nullptr;
    std::array<char, 96> name{};
    std::array<char, 96> uuid{};
    if (get_handle(index, &device) != kNvmlSuccess || get_name(device, name.data(), name.size()) != kNvmlSuccess ||
        get_uuid(device, uuid.data(), uuid.size()) != kNvmlSuccess) {
      result = NotFoundError("NVML could not describe GPU {}", index);
      break;
    }
    std::string model = GpuModelFromDeviceName(name.data());
    if (index == 0) inventory.model = model;
    if (model != inventory.model) {
      result = InvalidArgumentError("this node has GPUs of two models ({} and {}); allot needs one model per node",
                                    inventory.model, model);
    }
    inventory.uuids.push_back(uuid.data());
  }
  shutdown();
  dlclose(library);
  if (!result.ok()) return result;
  inventory.count = static_cast<int>(count);
  if (inventory.count == 0) return NotFoundError("NVML reports no GPUs");
  return inventory;
}

}  // namespace

std::string GpuModelFromDeviceName(std::string_view name) {
  constexpr std::string_view kVendor = "NVIDIA ";
  if (name.starts_with(kVendor)) name.remove_prefix(kVendor.size());
  return std::string(name);
}

StatusOr<GpuInventory> DiscoverGpus(const GpuDeclaration& declared) {
  if (declared.count > 0) {
    if (declared.model.empty()) return InvalidArgumentError("declared GPUs need a model: add --gpu-model, e.g. H200");
    return GpuInventory{.count = declared.count, .model = declared.model, .source = "declared"};
  }
  StatusOr<GpuInventory> found = QueryNvml();
  if (!found.ok()) {
    return NotFoundError("no GPUs found: {}; to run without the NVIDIA driver, declare emulated GPUs with "
                         "--gpus N --gpu-model MODEL", found.status().message());
  }
  return found;
}

}  // namespace allot
