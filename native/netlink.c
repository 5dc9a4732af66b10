/*
 * bpfnet_netlink: the few system calls Node cannot make, as a tiny N-API addon.
 *
 *   socketOpen(nsPath?)             NETLINK_ROUTE socket created inside a netns
 *   request(fd, Buffer) -> Buffer   send one request, read to its ACK/DONE
 *   socketClose(fd)
 *   netnsCreate(path)               `ip netns add`, to any path
 *   netnsDelete(path)               umount (lazy) + unlink; missing is fine
 *   netnsDirRemove(dir)             undo the shared self-bind of a netns dir
 *   sysctlWrite(nsPath|null, rel, value) / sysctlRead(nsPath|null, rel)
 *   bpfObjGet(path) -> fd           BPF_OBJ_GET of a pinned program/map (for TCA_BPF_FD)
 *   bpfProgGetFdById(id) -> fd      BPF_PROG_GET_FD_BY_ID
 *   bpfProgInfo(fd) -> {id, type, name, tag}   BPF_OBJ_GET_INFO_BY_FD of a program
 *   closeFd(fd)
 *   listenInNetns(nsPath, 'udp'|'tcp', addr, port) -> fd   an IPv4 server socket bound inside a netns
 *   netnsCookie(nsPath?) -> bigint  SO_NETNS_COOKIE of a netns
 *   openDir(path) -> fd             O_RDONLY|O_DIRECTORY (a cgroup, as BPF_LINK_CREATE target)
 *   bpfObjPin(fd, path)             BPF_OBJ_PIN
 *   bpfLinkCreate(progFd, targetFd, attachType) -> fd   BPF_LINK_CREATE
 *   bpfLinkUpdate(linkFd, newProgFd, oldProgFd?)       BPF_LINK_UPDATE (atomic replace)
 *   bpfLinkDetach(linkFd)           BPF_LINK_DETACH
 *   bpfLinkInfo(fd) -> {id, type, progId, cgroupId?, attachType?}   BPF_OBJ_GET_INFO_BY_FD of a link
 *
 * Everything is synchronous: a netlink round trip takes microseconds. A netns
 * is entered with a thread-level setns() on the calling thread and left again
 * before returning (on every path; failing to return is fatal because the
 * thread would silently keep running in the wrong namespace). A socket stays
 * in the netns it was created in. Message encoding and parsing live in
 * TypeScript (src/netlink/messages.ts); this file only moves bytes.
 *
 * Errors are JS Errors with `errno` (positive number), `code` ('EEXIST'),
 * `syscall` and, where one is involved, `path`.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

#define SELF_NETNS "/proc/thread-self/ns/net"
#define RECV_TIMEOUT_S 5
#define SOCK_BUF (1 << 20)
/* A dump skb is at most 32 KiB; acks are capped (NETLINK_CAP_ACK). */
#define RECV_BUF (128 * 1024)
#define MAX_PATH 4096

/* ---------- errors ---------- */

static const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(err);
  if (n) return n;
#endif
  (void)err;
  return NULL; /* the TypeScript side fills `code` from os.constants.errno */
}

/* Throws Error("<syscall> <path>: <strerror>") with errno/code/syscall/path. */
static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  char msg[MAX_PATH + 256];
  if (path)
    snprintf(msg, sizeof msg, "%s %s: %s", syscall, path, strerror(err));
  else
    snprintf(msg, sizeof msg, "%s: %s", syscall, strerror(err));
  napi_value m, e, v;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) != napi_ok) return NULL;
  if (napi_create_error(env, NULL, m, &e) != napi_ok) return NULL;
  napi_create_int32(env, err, &v);
  napi_set_named_property(env, e, "errno", v);
  const char *name = errno_name(err);
  if (name) {
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, e, "code", v);
  }
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "syscall", v);
  if (path) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, e, "path", v);
  }
  napi_throw(env, e);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

/* ---------- argument helpers ---------- */

#define GET_ARGS(n)                                                        \
  size_t argc = (n);                                                       \
  napi_value argv[(n) > 0 ? (n) : 1];                                      \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;

static int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_undefined || t == napi_null;
}

static int is_number(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_number;
}

/* Copies string argument i into buf; absent/undefined/null gives "" (returns 0, *present 0). */
static int get_opt_string(napi_env env, const napi_value *argv, size_t argc, size_t i, char *buf, size_t size, int *present) {
  *present = 0;
  buf[0] = 0;
  if (i >= argc || is_nullish(env, argv[i])) return 0;
  napi_valuetype t;
  napi_typeof(env, argv[i], &t);
  if (t != napi_string) return -1;
  size_t len;
  if (napi_get_value_string_utf8(env, argv[i], buf, size, &len) != napi_ok) return -1;
  if (len >= size - 1) return -1; /* truncated */
  *present = 1;
  return 0;
}

/* A string argument that must be there. */
static int get_string(napi_env env, const napi_value *argv, size_t argc, size_t i, char *buf, size_t size) {
  int present;
  return get_opt_string(env, argv, argc, i, buf, size, &present) < 0 || !present ? -1 : 0;
}

static int get_fd(napi_env env, napi_value v, int *fd) {
  if (!is_number(env, v)) return -1;
  return napi_get_value_int32(env, v, fd) == napi_ok && *fd >= 0 ? 0 : -1;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  if (!is_number(env, v)) return -1;
  return napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1;
}

/* ---------- results ---------- */

static napi_value int32_value(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

static void set_u32(napi_env env, napi_value obj, const char *key, uint32_t v) {
  napi_value x;
  napi_create_uint32(env, v, &x);
  napi_set_named_property(env, obj, key, x);
}

static void set_u64(napi_env env, napi_value obj, const char *key, uint64_t v) {
  napi_value x;
  napi_create_bigint_uint64(env, v, &x);
  napi_set_named_property(env, obj, key, x);
}

static void set_string(napi_env env, napi_value obj, const char *key, const char *v) {
  napi_value x;
  napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &x);
  napi_set_named_property(env, obj, key, x);
}

/* ---------- entering and leaving a netns (calling thread only) ---------- */

/* Enters the netns at path; *orig receives this thread's netns to return to. Returns 0 or -errno. */
static int ns_enter(const char *path, int *orig, const char **failed) {
  *orig = open(SELF_NETNS, O_RDONLY | O_CLOEXEC);
  if (*orig < 0) { *failed = "open " SELF_NETNS; return -errno; }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(*orig);
    *failed = "open";
    return -e;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(*orig);
    *failed = "setns";
    return -e;
  }
  close(target);
  return 0;
}

static void ns_leave(napi_env env, int orig) {
  (void)env;
  if (setns(orig, CLONE_NEWNET) < 0) {
    /* Continuing would run this thread's later work in the wrong netns. */
    napi_fatal_error("bpfnet_netlink", NAPI_AUTO_LENGTH, "cannot return to the original network namespace", NAPI_AUTO_LENGTH);
  }
  close(orig);
}

/*
 * socket() inside the netns at ns_path (NULL: this thread's own); the socket
 * stays in that netns. The fd, or -1 with an exception pending.
 */
static int socket_in_netns(napi_env env, const char *ns_path, int domain, int type, int protocol) {
  int orig = -1;
  if (ns_path) {
    const char *failed;
    int r = ns_enter(ns_path, &orig, &failed);
    if (r < 0) {
      throw_errno(env, -r, failed, ns_path);
      return -1;
    }
  }
  int fd = socket(domain, type, protocol);
  int e = errno;
  if (ns_path) ns_leave(env, orig);
  if (fd < 0) throw_errno(env, e, "socket", NULL);
  return fd;
}

/* ---------- sockets ---------- */

static napi_value socket_open(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  char path[MAX_PATH];
  int has_ns;
  if (get_opt_string(env, argv, argc, 0, path, sizeof path, &has_ns) < 0)
    return throw_type(env, "socketOpen(nsPath?: string)");
  int fd = socket_in_netns(env, has_ns ? path : NULL, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return NULL;

  struct timeval tv = {.tv_sec = RECV_TIMEOUT_S, .tv_usec = 0};
  int one = 1, buf = SOCK_BUF;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  /* Kernel error strings in NLMSG_ERROR, and no echo of our request in it. */
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);

  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "bind", NULL);
  }
  return int32_value(env, fd);
}

static napi_value socket_close(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (argc < 1 || get_fd(env, argv[0], &fd) < 0) return throw_type(env, "close(fd: number)");
  /* EINTR: the fd is released anyway on Linux; retrying could close another one. */
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close", NULL);
  return NULL;
}

static __thread char *recv_buf;

struct out_buf {
  char *data;
  size_t len, cap;
};

static int out_append(struct out_buf *o, const void *p, size_t n) {
  if (o->len + n > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + n) cap *= 2;
    char *d = realloc(o->data, cap);
    if (!d) return -1;
    o->data = d;
    o->cap = cap;
  }
  memcpy(o->data + o->len, p, n);
  o->len += n;
  return 0;
}

/*
 * Sends one request and collects the messages carrying its sequence number
 * until NLMSG_ERROR (the ack or an error) or NLMSG_DONE (end of a dump). A
 * request without NLM_F_ACK that is not a dump ends at its first reply.
 * Stale replies (other sequence numbers, e.g. after a timeout) are dropped.
 */
static napi_value request(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int fd;
  if (argc < 2 || get_fd(env, argv[0], &fd) < 0) return throw_type(env, "request(fd: number, msg: Buffer)");
  bool is_buf = false;
  napi_is_buffer(env, argv[1], &is_buf);
  if (!is_buf) return throw_type(env, "request(fd: number, msg: Buffer)");
  void *req;
  size_t req_len;
  napi_get_buffer_info(env, argv[1], &req, &req_len);
  if (req_len < NLMSG_HDRLEN) return throw_errno(env, EINVAL, "request", NULL);
  struct nlmsghdr hdr;
  memcpy(&hdr, req, sizeof hdr);
  const uint32_t seq = hdr.nlmsg_seq;
  const int wants_ack = (hdr.nlmsg_flags & NLM_F_ACK) != 0;
  const int is_dump = (hdr.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;

  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t n;
  do {
    n = sendto(fd, req, req_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "sendto", NULL);

  if (!recv_buf && !(recv_buf = malloc(RECV_BUF))) return throw_errno(env, ENOMEM, "malloc", NULL);
  struct out_buf out = {0};
  int done = 0;
  while (!done) {
    struct sockaddr_nl from;
    socklen_t fromlen = sizeof from;
    n = recvfrom(fd, recv_buf, RECV_BUF, MSG_TRUNC, (struct sockaddr *)&from, &fromlen);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      free(out.data);
      if (e == EAGAIN || e == EWOULDBLOCK) return throw_errno(env, ETIMEDOUT, "recv (netlink reply)", NULL);
      return throw_errno(env, e, "recv", NULL);
    }
    if ((size_t)n > RECV_BUF) {
      free(out.data);
      return throw_errno(env, EMSGSIZE, "recv", NULL);
    }
    if (from.nl_pid != 0) continue; /* not from the kernel */
    int len = (int)n;
    for (struct nlmsghdr *h = (struct nlmsghdr *)recv_buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      size_t size = NLMSG_ALIGN(h->nlmsg_len);
      if (size > (size_t)len) size = (size_t)len;
      if (out_append(&out, h, size) < 0) {
        free(out.data);
        return throw_errno(env, ENOMEM, "malloc", NULL);
      }
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR ||
          (!wants_ack && !is_dump && !(h->nlmsg_flags & NLM_F_MULTI))) {
        done = 1;
        break;
      }
    }
  }
  napi_value result;
  napi_status st = napi_create_buffer_copy(env, out.len, out.data ? out.data : "", NULL, &result);
  free(out.data);
  return st == napi_ok ? result : NULL;
}

/* ---------- network namespaces ---------- */

/*
 * Like iproute2 for /run/netns: the directory holding namespace files is made
 * a shared mount (a bind mount of itself if it is not a mount point yet), so
 * that mounts and unmounts in it propagate to other mount namespaces. Without
 * it, a mount namespace created later (a container runtime, `ip netns exec`,
 * systemd's PrivateTmp services) keeps a copy of every netns mount and the
 * namespace outlives its deletion. Done once per directory per process.
 */
#define SHARED_CACHE 16
static char shared_dirs[SHARED_CACHE][MAX_PATH];
static int shared_next;

static int shared_cached(const char *dir) {
  for (int i = 0; i < SHARED_CACHE; i++)
    if (shared_dirs[i][0] && strcmp(shared_dirs[i], dir) == 0) return 1;
  return 0;
}

static void shared_forget(const char *dir) {
  for (int i = 0; i < SHARED_CACHE; i++)
    if (strcmp(shared_dirs[i], dir) == 0) shared_dirs[i][0] = 0;
}

static int make_dir_shared(const char *dir, const char **failed) {
  if (shared_cached(dir)) return 0;
  if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0) {
    if (errno != EINVAL) { *failed = "mount --make-rshared"; return -errno; }
    /* Not a mount point: bind it onto itself first. */
    if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0) { *failed = "mount --rbind"; return -errno; }
    if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0) { *failed = "mount --make-rshared"; return -errno; }
  }
  snprintf(shared_dirs[shared_next], MAX_PATH, "%s", dir);
  shared_next = (shared_next + 1) % SHARED_CACHE;
  return 0;
}

static napi_value netns_create(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  char path[MAX_PATH];
  if (get_string(env, argv, argc, 0, path, sizeof path) < 0 || path[0] != '/')
    return throw_type(env, "netnsCreate(path: absolute path string)");

  char dir[MAX_PATH];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  /* Never change the propagation of / itself. */
  if (slash == dir) return throw_errno(env, EINVAL, "netns create (file directly in /)", path);
  *slash = 0;
  const char *failed = NULL;
  int r = make_dir_shared(dir, &failed);
  if (r < 0) return throw_errno(env, -r, failed, dir);

  int created = 0;
  int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd >= 0) {
    close(fd);
    created = 1;
  } else if (errno == EEXIST) {
    /* A leftover plain file is reused; a live namespace is a conflict. */
    struct statfs sf;
    if (statfs(path, &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)NSFS_MAGIC)
      return throw_errno(env, EEXIST, "netns create", path);
  } else {
    return throw_errno(env, errno, "open", path);
  }

  int orig = open(SELF_NETNS, O_RDONLY | O_CLOEXEC);
  if (orig < 0) {
    int e = errno;
    if (created) unlink(path);
    return throw_errno(env, e, "open", SELF_NETNS);
  }
  if (unshare(CLONE_NEWNET) < 0) {
    int e = errno;
    close(orig);
    if (created) unlink(path);
    return throw_errno(env, e, "unshare", NULL);
  }
  int mr = mount(SELF_NETNS, path, "none", MS_BIND, NULL);
  int e = errno;
  ns_leave(env, orig); /* the bind mount (if any) now holds the new netns */
  if (mr < 0) {
    if (created) unlink(path);
    return throw_errno(env, e, "mount --bind", path);
  }
  return NULL;
}

static napi_value netns_delete(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  char path[MAX_PATH];
  if (get_string(env, argv, argc, 0, path, sizeof path) < 0) return throw_type(env, "netnsDelete(path: string)");
  /* EINVAL: not a mount point (a leftover file); ENOENT: already gone. */
  if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) return throw_errno(env, errno, "umount", path);
  if (unlink(path) < 0 && errno != ENOENT) return throw_errno(env, errno, "unlink", path);
  return NULL;
}

/* Removes a netns directory made shared by netnsCreate (lazy umount + rmdir). */
static napi_value netns_dir_remove(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  char dir[MAX_PATH];
  if (get_string(env, argv, argc, 0, dir, sizeof dir) < 0 || dir[0] != '/')
    return throw_type(env, "netnsDirRemove(dir: absolute path string)");
  shared_forget(dir);
  if (umount2(dir, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) return throw_errno(env, errno, "umount", dir);
  if (rmdir(dir) < 0 && errno != ENOENT) return throw_errno(env, errno, "rmdir", dir);
  return NULL;
}

/* ---------- sysctl ---------- */

/* /proc/sys/net/... shows the netns of the task that opens it: open and use it inside. */
static napi_value sysctl_io(napi_env env, napi_callback_info info, int write_mode) {
  GET_ARGS(3);
  char ns[MAX_PATH], rel[512], value[4096], path[600];
  int has_ns;
  if (argc < 2 || get_opt_string(env, argv, argc, 0, ns, sizeof ns, &has_ns) < 0 ||
      get_string(env, argv, argc, 1, rel, sizeof rel) < 0 ||
      (write_mode && get_string(env, argv, argc, 2, value, sizeof value) < 0))
    return throw_type(env, write_mode ? "sysctlWrite(nsPath: string | null, relPath: string, value: string)"
                                      : "sysctlRead(nsPath: string | null, relPath: string)");
  snprintf(path, sizeof path, "/proc/sys/%s", rel);

  int orig = -1;
  if (has_ns) {
    const char *failed;
    int r = ns_enter(ns, &orig, &failed);
    if (r < 0) return throw_errno(env, -r, failed, ns);
  }
  int err = 0;
  const char *op = "open";
  ssize_t n = 0;
  int fd = open(path, (write_mode ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
  } else {
    if (write_mode) {
      size_t len = strlen(value);
      n = write(fd, value, len);
      if (n < 0) { err = errno; op = "write"; }
      else if ((size_t)n != len) { err = EIO; op = "write"; }
    } else {
      n = read(fd, value, sizeof value - 1);
      if (n < 0) { err = errno; op = "read"; }
    }
    close(fd);
  }
  if (has_ns) ns_leave(env, orig);
  if (err) return throw_errno(env, err, op, path);
  if (write_mode) return NULL;
  napi_value out;
  napi_create_string_utf8(env, value, (size_t)n, &out);
  return out;
}

static napi_value sysctl_write(napi_env env, napi_callback_info info) { return sysctl_io(env, info, 1); }
static napi_value sysctl_read(napi_env env, napi_callback_info info) { return sysctl_io(env, info, 0); }

/* ---------- bpf objects (for tc attachment over rtnetlink) ---------- */

/*
 * What attaching a pinned program needs (an fd for TCA_BPF_FD, and the
 * program's identity to report) and cgroup links (below). bpf fds are always O_CLOEXEC.
 * BPF objects are not per-netns, so no setns is involved.
 */
static long sys_bpf(int cmd, union bpf_attr *attr, unsigned int size) {
  return syscall(__NR_bpf, cmd, attr, size);
}

/* Throws Error("bpf(<name>) [path]: ...") for errno. */
static napi_value throw_bpf(napi_env env, int err, const char *name, const char *path) {
  char syscall_name[64];
  snprintf(syscall_name, sizeof syscall_name, "bpf(%s)", name);
  return throw_errno(env, err, syscall_name, path);
}

/* bpf(cmd, attr): the result (an fd, or 0), or -1 with an exception pending. */
#define BPF_CMD(env, cmd, attr, path) bpf_call(env, cmd, #cmd, attr, path)
static long bpf_call(napi_env env, int cmd, const char *name, union bpf_attr *attr, const char *path) {
  long r = sys_bpf(cmd, attr, sizeof *attr);
  if (r < 0) throw_bpf(env, errno, name, path);
  return r;
}

/* BPF_OBJ_GET_INFO_BY_FD into info (a struct bpf_prog_info, bpf_link_info, ...): 0, or -1 with an exception pending. */
static int bpf_obj_info(napi_env env, int fd, void *info, uint32_t len) {
  memset(info, 0, len);
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.info.bpf_fd = (uint32_t)fd;
  attr.info.info_len = len;
  attr.info.info = (uint64_t)(uintptr_t)info;
  return BPF_CMD(env, BPF_OBJ_GET_INFO_BY_FD, &attr, NULL) < 0 ? -1 : 0;
}

/*
 * The same info command answers for programs, maps and links, each in its
 * own struct: is fd an anonymous inode of this kind ("bpf-prog",
 * "bpf_link"/"bpf-link", "bpf-map")? 1, 0 or -errno.
 */
static int fd_kind_is(int fd, const char *kind) {
  char link[64], target[64], want[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t tn = readlink(link, target, sizeof target - 1);
  if (tn < 0) return -errno;
  target[tn] = 0;
  snprintf(want, sizeof want, "anon_inode:%s", kind);
  return strcmp(target, want) == 0;
}

static napi_value bpf_obj_get(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  char path[MAX_PATH];
  if (get_string(env, argv, argc, 0, path, sizeof path) < 0) return throw_type(env, "bpfObjGet(path: string)");
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.pathname = (uint64_t)(uintptr_t)path;
  long fd;
  do {
    fd = sys_bpf(BPF_OBJ_GET, &attr, sizeof attr);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return throw_bpf(env, errno, "BPF_OBJ_GET", path);
  return int32_value(env, (int32_t)fd);
}

static napi_value bpf_prog_get_fd_by_id(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  uint32_t id = 0;
  if (argc < 1 || get_u32(env, argv[0], &id) < 0 || id == 0) return throw_type(env, "bpfProgGetFdById(id: positive number)");
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_id = id;
  long fd = BPF_CMD(env, BPF_PROG_GET_FD_BY_ID, &attr, NULL);
  return fd < 0 ? NULL : int32_value(env, (int32_t)fd);
}

static napi_value bpf_prog_info(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (argc < 1 || get_fd(env, argv[0], &fd) < 0) return throw_type(env, "bpfProgInfo(fd: number)");
  int k = fd_kind_is(fd, "bpf-prog");
  if (k < 0) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    return throw_errno(env, -k, "readlink", link);
  }
  if (!k) return throw_errno(env, EINVAL, "bpf(BPF_OBJ_GET_INFO_BY_FD) (not a program)", NULL);
  struct bpf_prog_info pi;
  if (bpf_obj_info(env, fd, &pi, sizeof pi) < 0) return NULL;

  char name[BPF_OBJ_NAME_LEN + 1];
  memcpy(name, pi.name, BPF_OBJ_NAME_LEN);
  name[BPF_OBJ_NAME_LEN] = 0;
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);

  napi_value out;
  napi_create_object(env, &out);
  set_u32(env, out, "id", pi.id);
  set_u32(env, out, "type", pi.type);
  set_string(env, out, "name", name);
  set_string(env, out, "tag", tag);
  return out;
}

/* ---------- server sockets in a netns ---------- */

/*
 * listenInNetns(nsPath, type, addr, port) -> fd: an IPv4 socket (UDP or
 * TCP) created, bound and (TCP) listening inside the netns at nsPath, for
 * Node to adopt (dgram bind({fd}), net listen({fd})). A socket stays in the
 * netns it was created in, so the process can serve a sandbox's loopback
 * address (the embedded DNS server's 127.0.0.11:53) from its own netns.
 * Only socket() needs the netns; bind and listen happen after returning to
 * the original one (they act on the socket's own netns). Non-blocking,
 * close-on-exec, SO_REUSEADDR.
 */
#define LISTEN_BACKLOG 128

/*
 * argv[first..first+2] = type ('udp' | 'tcp'), IPv4 address, port (at least
 * min_port, at most 65535) -> socket type, the address text and a sockaddr.
 * -1 on any bad argument (the caller throws its usage).
 */
static int get_socket_target(napi_env env, const napi_value *argv, size_t first, uint32_t min_port, int *stype, char addr[INET_ADDRSTRLEN + 1], struct sockaddr_in *sa) {
  char type[8];
  uint32_t port;
  if (get_string(env, argv, first + 3, first, type, sizeof type) < 0 || get_string(env, argv, first + 3, first + 1, addr, INET_ADDRSTRLEN + 1) < 0) return -1;
  if (strcmp(type, "udp") == 0) *stype = SOCK_DGRAM;
  else if (strcmp(type, "tcp") == 0) *stype = SOCK_STREAM;
  else return -1;
  if (get_u32(env, argv[first + 2], &port) < 0 || port < min_port || port > 65535) return -1;
  *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  return inet_pton(AF_INET, addr, &sa->sin_addr) == 1 ? 0 : -1;
}

static napi_value listen_in_netns(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  static const char *usage = "listenInNetns(nsPath: string, type: 'udp' | 'tcp', addr: IPv4 string, port: number)";
  char path[MAX_PATH], addr[INET_ADDRSTRLEN + 1];
  int stype;
  struct sockaddr_in sa;
  if (argc < 4 || get_string(env, argv, argc, 0, path, sizeof path) < 0 || get_socket_target(env, argv, 1, 0, &stype, addr, &sa) < 0)
    return throw_type(env, usage);

  int fd = socket_in_netns(env, path, AF_INET, stype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;

  int one = 1;
  const char *op = NULL;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) op = "setsockopt SO_REUSEADDR";
  else if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) op = "bind";
  else if (stype == SOCK_STREAM && listen(fd, LISTEN_BACKLOG) < 0) op = "listen";
  if (op) {
    int e = errno;
    close(fd);
    char where[MAX_PATH + 64];
    snprintf(where, sizeof where, "%s:%u in %s", addr, (unsigned)ntohs(sa.sin_port), path);
    return throw_errno(env, e, op, where);
  }
  return int32_value(env, fd);
}

/*
 * bindProbe(type, addr, port) -> errno (0: free): would a bind of addr:port
 * succeed in this thread's netns? bind() and close(), nothing listens. TCP
 * sets SO_REUSEADDR so TIME_WAIT leftovers do not count (a listener still
 * does); UDP does not, so any bound socket counts. IP_FREEBIND: an address
 * the node does not have is judged by its port alone. One syscall pair
 * instead of reading /proc/net/tcp, whose read walks the whole TCP hash
 * (~1.5 ms even when empty).
 */
static napi_value bind_probe(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  static const char *usage = "bindProbe(type: 'udp' | 'tcp', addr: IPv4 string, port: number)";
  char addr[INET_ADDRSTRLEN + 1];
  int stype;
  struct sockaddr_in sa;
  if (argc < 3 || get_socket_target(env, argv, 0, 1, &stype, addr, &sa) < 0) return throw_type(env, usage);
  int fd = socket(AF_INET, stype | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket", addr);
  int one = 1, err = 0;
  if (stype == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) err = errno;
  else if (setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one) < 0) err = errno;
  else if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) err = errno;
  close(fd);
  return int32_value(env, err);
}

/* ---------- netns cookie ---------- */

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/*
 * netnsCookie(nsPath?) -> bigint: the kernel's 64-bit cookie of a network
 * namespace, as bpf_get_netns_cookie() returns it inside BPF programs; lets
 * programs shared by every namespace (cgroup hooks, a sandbox's loopback
 * hook) tell namespaces apart.
 */
static napi_value netns_cookie(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  char path[MAX_PATH];
  int has_ns;
  if (get_opt_string(env, argv, argc, 0, path, sizeof path, &has_ns) < 0)
    return throw_type(env, "netnsCookie(nsPath?: string)");
  int fd = socket_in_netns(env, has_ns ? path : NULL, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "getsockopt SO_NETNS_COOKIE", NULL);
  }
  close(fd);
  napi_value out;
  napi_create_bigint_uint64(env, cookie, &out);
  return out;
}

/* ---------- BPF links (cgroup attachment) ---------- */

/*
 * A cgroup program is attached through a BPF link: BPF_LINK_CREATE with the
 * cgroup directory's fd as target, pinned in bpffs (BPF_OBJ_PIN) so it
 * outlives the process; BPF_LINK_UPDATE swaps the program atomically; the
 * link (and the attachment) goes away with its last pin and fd, or at once
 * with BPF_LINK_DETACH.
 */

static napi_value open_dir(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  char path[MAX_PATH];
  if (get_string(env, argv, argc, 0, path, sizeof path) < 0) return throw_type(env, "openDir(path: string)");
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", path);
  return int32_value(env, fd);
}

static napi_value bpf_obj_pin(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int fd;
  char path[MAX_PATH];
  if (argc < 2 || get_fd(env, argv[0], &fd) < 0 || get_string(env, argv, argc, 1, path, sizeof path) < 0)
    return throw_type(env, "bpfObjPin(fd: number, path: string)");
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.pathname = (uint64_t)(uintptr_t)path;
  attr.bpf_fd = (uint32_t)fd;
  BPF_CMD(env, BPF_OBJ_PIN, &attr, path);
  return NULL;
}

static napi_value bpf_link_create(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int prog_fd, target_fd;
  uint32_t attach_type;
  if (argc < 3 || get_fd(env, argv[0], &prog_fd) < 0 || get_fd(env, argv[1], &target_fd) < 0 ||
      get_u32(env, argv[2], &attach_type) < 0)
    return throw_type(env, "bpfLinkCreate(progFd: number, targetFd: number, attachType: number)");
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.link_create.prog_fd = (uint32_t)prog_fd;
  attr.link_create.target_fd = (uint32_t)target_fd;
  attr.link_create.attach_type = attach_type;
  long fd = BPF_CMD(env, BPF_LINK_CREATE, &attr, NULL);
  return fd < 0 ? NULL : int32_value(env, (int32_t)fd);
}

static napi_value bpf_link_update(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  static const char *usage = "bpfLinkUpdate(linkFd: number, newProgFd: number, oldProgFd?: number)";
  int link_fd, prog_fd, old_fd = -1;
  if (argc < 2 || get_fd(env, argv[0], &link_fd) < 0 || get_fd(env, argv[1], &prog_fd) < 0) return throw_type(env, usage);
  if (argc >= 3 && !is_nullish(env, argv[2]) && get_fd(env, argv[2], &old_fd) < 0) return throw_type(env, usage);
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.link_update.link_fd = (uint32_t)link_fd;
  attr.link_update.new_prog_fd = (uint32_t)prog_fd;
  if (old_fd >= 0) {
    attr.link_update.flags = BPF_F_REPLACE;
    attr.link_update.old_prog_fd = (uint32_t)old_fd;
  }
  BPF_CMD(env, BPF_LINK_UPDATE, &attr, NULL);
  return NULL;
}

static napi_value bpf_link_detach(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int link_fd;
  if (argc < 1 || get_fd(env, argv[0], &link_fd) < 0) return throw_type(env, "bpfLinkDetach(linkFd: number)");
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.link_detach.link_fd = (uint32_t)link_fd;
  BPF_CMD(env, BPF_LINK_DETACH, &attr, NULL);
  return NULL;
}

#ifndef BPF_LINK_TYPE_CGROUP
#define BPF_LINK_TYPE_CGROUP 3
#endif

static napi_value bpf_link_info(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (argc < 1 || get_fd(env, argv[0], &fd) < 0) return throw_type(env, "bpfLinkInfo(fd: number)");
  /* "bpf_link" from BPF_LINK_CREATE, "bpf-link" from BPF_OBJ_GET. */
  int k = fd_kind_is(fd, "bpf_link");
  if (k == 0) k = fd_kind_is(fd, "bpf-link");
  if (k < 0) return throw_errno(env, -k, "readlink", NULL);
  if (!k) return throw_errno(env, EINVAL, "bpf(BPF_OBJ_GET_INFO_BY_FD) (not a link)", NULL);
  struct bpf_link_info li;
  if (bpf_obj_info(env, fd, &li, sizeof li) < 0) return NULL;
  napi_value out;
  napi_create_object(env, &out);
  set_u32(env, out, "id", li.id);
  set_u32(env, out, "type", li.type);
  set_u32(env, out, "progId", li.prog_id);
  if (li.type == BPF_LINK_TYPE_CGROUP) {
    /* cgroupId 0: the cgroup is gone (the link is defunct). */
    set_u64(env, out, "cgroupId", li.cgroup.cgroup_id);
    set_u32(env, out, "attachType", li.cgroup.attach_type);
  }
  return out;
}

/* ---------- module ---------- */

#define EXPORT(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      EXPORT("socketOpen", socket_open),
      EXPORT("socketClose", socket_close),
      EXPORT("request", request),
      EXPORT("netnsCreate", netns_create),
      EXPORT("netnsDelete", netns_delete),
      EXPORT("netnsDirRemove", netns_dir_remove),
      EXPORT("sysctlWrite", sysctl_write),
      EXPORT("sysctlRead", sysctl_read),
      EXPORT("bpfObjGet", bpf_obj_get),
      EXPORT("bpfProgGetFdById", bpf_prog_get_fd_by_id),
      EXPORT("bpfProgInfo", bpf_prog_info),
      EXPORT("closeFd", socket_close),
      EXPORT("listenInNetns", listen_in_netns),
      EXPORT("bindProbe", bind_probe),
      EXPORT("netnsCookie", netns_cookie),
      EXPORT("openDir", open_dir),
      EXPORT("bpfObjPin", bpf_obj_pin),
      EXPORT("bpfLinkCreate", bpf_link_create),
      EXPORT("bpfLinkUpdate", bpf_link_update),
      EXPORT("bpfLinkDetach", bpf_link_detach),
      EXPORT("bpfLinkInfo", bpf_link_info),
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
