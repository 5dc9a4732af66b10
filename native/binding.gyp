# The rtnetlink/netns addon (see netlink.c). Built by `make native`.
{
  "targets": [
    {
      "target_name": "bpfnet_netlink",
      "sources": ["netlink.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_c": ["-std=gnu11"]
    }
  ]
}
