{
  "targets": [{
    "target_name": "pmemfs_native",
    "sources": ["src/binding.c", "src/session.c", "src/slots.c", "src/dispatch.c", "src/loop.c",
                "src/init.c", "src/reply.c", "src/notify.c",
                "src/idlepoll.c"],
    "include_dirs": ["include", "/usr/include/fuse3"],
    "defines": ["_GNU_SOURCE", "_FILE_OFFSET_BITS=64", "FUSE_USE_VERSION=35", "NAPI_VERSION=8"],
    "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
    "libraries": ["-lfuse3", "-lpthread"]
  }]
}
