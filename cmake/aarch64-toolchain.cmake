# Cross-compiling for aarch64 Linux with Debian's g++-aarch64-linux-gnu; binaries run under
# qemu-user (package qemu-user) with the arm64 runtime from /usr/aarch64-linux-gnu:
#   cmake -S tests/arm -B build-arm -DCMAKE_TOOLCHAIN_FILE=$PWD/cmake/aarch64-toolchain.cmake
# (an absolute path: CMake looks for a relative one in the build directory). tools/arm-test.sh
# does this and runs the tests under qemu.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(QLLM_CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "Prefix of the cross compiler's programs")
set(QLLM_CROSS_SYSROOT /usr/aarch64-linux-gnu CACHE PATH "Target libraries and headers (qemu -L)")
set(CMAKE_C_COMPILER ${QLLM_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${QLLM_CROSS_PREFIX}g++)

# Target libraries and packages only from the cross root; build tools from the host.
set(CMAKE_FIND_ROOT_PATH ${QLLM_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# `-cpu max` has every extension qemu knows (dotprod, fp16, i8mm, ...); ctest and
# gtest_discover_tests start target programs through this.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-cpu;max;-L;${QLLM_CROSS_SYSROOT})
