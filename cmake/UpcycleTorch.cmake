# Locate LibTorch. Order:
#   1. -DTorch_DIR=... (a cluster's own LibTorch) or CMAKE_PREFIX_PATH, as CMake normally does;
#   2. the PyPI torch wheel's bundled LibTorch, via torch.utils.cmake_prefix_path of UPCYCLE_PYTHON
#      (scripts/build.sh passes ./.venv/bin/python);
#   3. Debian's libtorch-dev (1.13), the fallback.
set(UPCYCLE_PYTHON "" CACHE FILEPATH "Python whose torch wheel provides LibTorch (default: python3)")
if(NOT Torch_DIR)
  if(NOT UPCYCLE_PYTHON)
    find_package(Python3 COMPONENTS Interpreter QUIET)
    set(UPCYCLE_PYTHON ${Python3_EXECUTABLE})
  endif()
  if(UPCYCLE_PYTHON)
    execute_process(
      COMMAND ${UPCYCLE_PYTHON} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE UPCYCLE_TORCH_PREFIX OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE UPCYCLE_TORCH_RC ERROR_QUIET)
    if(UPCYCLE_TORCH_RC EQUAL 0 AND EXISTS "${UPCYCLE_TORCH_PREFIX}/Torch")
      set(Torch_DIR "${UPCYCLE_TORCH_PREFIX}/Torch" CACHE PATH "LibTorch CMake config" FORCE)
    endif()
  endif()
endif()
find_package(Torch REQUIRED)
message(STATUS "upcycle: LibTorch ${Torch_VERSION} from ${Torch_DIR}")
# TORCH_CXX_FLAGS carries _GLIBCXX_USE_CXX11_ABI; every C++ target must agree with it.
separate_arguments(UPCYCLE_TORCH_CXX_FLAGS UNIX_COMMAND "${TORCH_CXX_FLAGS}")
add_compile_options(${UPCYCLE_TORCH_CXX_FLAGS})

# The PyPI wheel's libtorch_cuda.so finds NCCL/cuDNN/cuBLAS in site-packages/nvidia/*/lib through its
# RUNPATH. The linker does not follow RUNPATH when resolving those libraries' symbols, and would pick a
# system NCCL of another version instead, so point it at the same folders.
get_filename_component(UPCYCLE_TORCH_ROOT "${Torch_DIR}/../../.." ABSOLUTE)
file(GLOB UPCYCLE_WHEEL_NVIDIA_LIBS LIST_DIRECTORIES true "${UPCYCLE_TORCH_ROOT}/../nvidia/*/lib")
foreach(dir ${UPCYCLE_WHEEL_NVIDIA_LIBS})
  add_link_options("LINKER:-rpath-link,${dir}")
endforeach()
