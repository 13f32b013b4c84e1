#include "agent/gpus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <dlfcn.h>

namespace allot {
namespace {

using ::testing::HasSubstr;

TEST(GpusTest, DeclaredGpusNeedAModel) {
  StatusOr<GpuInventory> declared = DiscoverGpus({.count = 8, .model = "H200"});
  ASSERT_TRUE(declared.ok());
  EXPECT_EQ(declared->count, 8);
  EXPECT_EQ(declared->model, "H200");
  EXPECT_EQ(declared->source, "declared");
  StatusOr<GpuInventory> no_model = DiscoverGpus({.count = 8});
  ASSERT_FALSE(no_model.ok());
  EXPECT_THAT(no_model.status().message(), HasSubstr("--gpu-model"));
}

TEST(GpusTest, WithoutTheDriverTheErrorSaysHowToDeclareGpus) {
  if (void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(nvml);
    GTEST_SKIP() << "this machine has NVML; the device check covers discovery";
  }
  StatusOr<GpuInventory> found = DiscoverGpus({});
  ASSERT_FALSE(found.ok());
  EXPECT_THAT(found.status().message(), HasSubstr("--gpus N --gpu-model MODEL"));
}

TEST(GpusTest, ModelNamesDropTheVendor) {
  EXPECT_EQ(GpuModelFromDeviceName("NVIDIA H200"), "H200");
  EXPECT_EQ(GpuModelFromDeviceName("NVIDIA GeForce RTX 4090"), "GeForce RTX 4090");
  EXPECT_EQ(GpuModelFromDeviceName("Tesla V100"), "Tesla V100");
}

}  // namespace
}  // namespace allot
