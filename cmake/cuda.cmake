# cuda.cmake: the optional CUDA backend (native/src/cuda/), included from CMakeLists.txt after
# carzero_core is defined.
#   CARZERO_CUDA=AUTO (default): build it when nvcc is found; ON: required (fatal without nvcc);
#   OFF: never. CARZERO_CUDA_ARCHS overrides the architecture list (e.g. 90-real for quick local
#   builds). CARZERO_DEV_KERNELS=ON adds the experiments of native/dev/cuda. cudart is linked
#   statically and cuBLAS/cuBLASLt are opened with dlopen at run time, so every binary still
#   loads on machines with no GPU, no driver and no cuBLAS; libcuda is never linked
#   (cudart_static opens it lazily on the first runtime call).
string(TOUPPER "${CARZERO_CUDA}" CZ_CUDA_MODE)
set(CZ_WITH_CUDA OFF)
if(CZ_CUDA_MODE STREQUAL "OFF")
  message(STATUS "carzero: CUDA backend disabled (CARZERO_CUDA=OFF)")
elseif(CZ_CUDA_MODE STREQUAL "ON" OR CZ_CUDA_MODE STREQUAL "AUTO")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER)
    # check_language looks on PATH; the default toolkit location is tried as well.
    if(NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
      set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "CUDA compiler")
    else()
      check_language(CUDA)
    endif()
  endif()
  if(CMAKE_CUDA_COMPILER)
    set(CZ_WITH_CUDA ON)
  elseif(CZ_CUDA_MODE STREQUAL "ON")
    message(FATAL_ERROR "carzero: CARZERO_CUDA=ON but no CUDA compiler (nvcc) was found. Install "
                        "the CUDA toolkit, put nvcc on PATH or set CUDACXX, or configure with "
                        "-DCARZERO_CUDA=AUTO/OFF.")
  else()
    message(STATUS "carzero: nvcc not found, building without the CUDA backend")
  endif()
else()
  message(FATAL_ERROR "carzero: CARZERO_CUDA must be AUTO, ON or OFF (got '${CARZERO_CUDA}')")
endif()

if(CZ_WITH_CUDA)
  set(CARZERO_CUDA_ARCHS "80-real;86-real;89-real;90-real;90-virtual" CACHE STRING
      "CUDA architectures of the CUDA backend (CMAKE_CUDA_ARCHITECTURES syntax)")
  set(CMAKE_CUDA_ARCHITECTURES "${CARZERO_CUDA_ARCHS}")
  if(CZ_SYSROOT)
    # nvcc's host compiler sees the same glibc 2.31 headers as the C++ sources
    set(CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS} -Xcompiler=--sysroot=${CZ_SYSROOT}")
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  file(GLOB CZ_CUDA_SOURCES CONFIGURE_DEPENDS
    ${CMAKE_CURRENT_SOURCE_DIR}/native/src/cuda/*.cu
    ${CMAKE_CURRENT_SOURCE_DIR}/native/src/cuda/*.cpp)
  target_sources(carzero_core PRIVATE ${CZ_CUDA_SOURCES})
  # The experimental kernels of native/dev/cuda (CARZERO_ATTN_KERNEL=persist, wide, ...): in the
  # GPU kit's builds, never in release binaries.
  if(CARZERO_DEV_KERNELS)
    file(GLOB CZ_DEV_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/native/dev/cuda/*.cu)
    target_sources(carzero_core PRIVATE ${CZ_DEV_CUDA_SOURCES})
    target_compile_definitions(carzero_core PRIVATE CZ_DEV_KERNELS)
    target_include_directories(carzero_core PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/native)
    message(STATUS "carzero: with the experimental kernels of native/dev (CARZERO_DEV_KERNELS)")
  endif()
  target_compile_definitions(carzero_core PUBLIC CARZERO_WITH_CUDA)
  # The runtime version (CUDART_VERSION's encoding: 13000 = 13.0) for the driver check in
  # core/info.cpp, which is plain C++ without the CUDA headers.
  string(REGEX MATCH "^([0-9]+)\\.([0-9]+)" _cz_cv "${CMAKE_CUDA_COMPILER_VERSION}")
  math(EXPR CZ_CUDA_RUNTIME_VERSION "${CMAKE_MATCH_1} * 1000 + ${CMAKE_MATCH_2} * 10")
  target_compile_definitions(carzero_core PRIVATE CZ_CUDA_RUNTIME_VERSION=${CZ_CUDA_RUNTIME_VERSION})
  # -lineinfo: compute-sanitizer and profilers map to source lines at no run-time cost.
  target_compile_options(carzero_core PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo -Xcompiler=-fvisibility=hidden>)
  # carzero_core exists before enable_language(CUDA), so its CUDA properties are set here.
  set_target_properties(carzero_core PROPERTIES CUDA_ARCHITECTURES "${CARZERO_CUDA_ARCHS}"
                                                CUDA_SEPARABLE_COMPILATION OFF
                                                CUDA_RUNTIME_LIBRARY Static)
  # cudart_static brings its own -ldl -lpthread -lrt; CUDA::cudart_static never links libcuda.
  target_link_libraries(carzero_core PUBLIC CUDA::cudart_static)
  message(STATUS "carzero: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${CMAKE_CUDA_ARCHITECTURES})")
endif()
