# node-gyp fallback build of the CPU addon, from the same sources as CMakeLists.txt, for machines
# without CMake. ISA-specific kernels (*_avx2.cpp, *_avx512.cpp) are compiled in their own static
# libraries with their own flags and chosen at run time by CPUID. scripts/gyp-sources.cjs lists
# the files (gyp cannot glob).
{
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-fvisibility=hidden"],
    "include_dirs": ["native/include", "native/src", "<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["CZ_VERSION_STRING=\"<!(node -p \"require('./package.json').version\")\"", "NAPI_VERSION=8",
                "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"]
  },
  "targets": [
    {
      "target_name": "carzero_avx2",
      "type": "static_library",
      "sources": ["<!@(node scripts/gyp-sources.cjs avx2)"],
      "cflags_cc": ["-mavx2", "-mfma", "-mf16c"]
    },
    {
      "target_name": "carzero_avx512",
      "type": "static_library",
      "sources": ["<!@(node scripts/gyp-sources.cjs avx512)"],
      "cflags_cc": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq",
                    "-mavx512bf16"]
    },
    {
      "target_name": "carzero",
      "sources": ["<!@(node scripts/gyp-sources.cjs generic)", "<!@(node scripts/gyp-sources.cjs napi)"],
      "dependencies": ["carzero_avx2", "carzero_avx512"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
