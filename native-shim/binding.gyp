{
  "targets": [{
    "target_name": "pmemfs_shim",
    "sources": ["src/binding.c", "src/dispatch.c", "src/hook.c"],
    "include_dirs": [
      "include",
      "<!(node -e \"require('fuse-shared-library-linux/include')\")"
    ],
    "defines": ["_GNU_SOURCE", "_FILE_OFFSET_BITS=64", "FUSE_USE_VERSION=29", "NAPI_VERSION=8"],
    "cflags": ["-std=gnu11", "-Wall", "-Wextra"],
    "libraries": ["-l:libfuse.so.2", "-ldl", "-lpthread"]
  }]
}
