/*
 * udp-batch: reads a bound UDP socket's datagrams in batches (recvmmsg) for spaknockd, and
 * hands each batch to JavaScript in one call, into buffers JavaScript owns.
 *
 * Why: under a flood of junk the daemon's cost is Node's per-datagram receive path (a 64 KiB
 * allocation, a Buffer, an address object and a JS call for each datagram; see
 * agent/capture/udp-socket.ts). Here one recvmmsg call fills up to SLOTS fixed slots and one
 * call into JavaScript reads them; nothing is allocated per datagram.
 *
 * What it does not do: bind, close the socket, or parse anything. Node's dgram socket binds and
 * owns the descriptor; this only polls it (libuv's uv_poll_t on the same loop) after Node's own
 * reads were stopped, and stops polling before the socket is closed. It never sends.
 *
 * The JavaScript side (agent/capture/batch-receiver.ts) passes:
 *   payloads  SLOTS * SLOT_BYTES bytes: datagram i is at i * SLOT_BYTES, its first
 *             min(length, SLOT_BYTES) bytes (a longer one is cut: no SPA packet is that long);
 *   meta      SLOTS * META_INTS int32s: [length as sent, family 4 or 6, source port,
 *             source address bytes (4 or 16) from the 4th int on];
 *   onBatch   called with the number of datagrams in the slots, synchronously; the slots are
 *             overwritten by the next batch.
 * An IPv4-mapped source (::ffff:a.b.c.d on a dual-stack socket) is reported as family 4.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define SLOTS 64
#define SLOT_BYTES 2048
#define META_INTS 8
/* Batches per wake-up at most, so that a flood cannot keep the event loop from its timers. */
#define BATCHES_PER_WAKEUP 4

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref on_batch;
  napi_ref payloads_ref;
  napi_ref meta_ref;
  napi_async_context context;
  uint8_t *payloads;
  int32_t *meta;
  int fd;
  int polling;
  int closed;
  /* The JavaScript handle's box (NULL once it was finalized): cleared when this closes. */
  struct handle_box *box;
  struct mmsghdr msgs[SLOTS];
  struct iovec iov[SLOTS];
  struct sockaddr_storage from[SLOTS];
} receiver_t;

/*
 * What the JavaScript handle holds: a pointer that close() clears. The receiver itself is freed
 * by libuv's close callback, the box by the handle's finalizer, so a call on a closed handle
 * finds NULL instead of freed memory.
 */
typedef struct handle_box {
  receiver_t *r;
} handle_box_t;

/* Tags the JavaScript handle, so that no other external is taken for one. */
static const napi_type_tag HANDLE_TAG = {0x7370616b6e6f636bULL, 0x7564702d62617463ULL};

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void reset_slots(receiver_t *r) {
  memset(r->from, 0, sizeof r->from);
  for (int i = 0; i < SLOTS; i++) {
    r->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    r->msgs[i].msg_hdr.msg_flags = 0;
    r->msgs[i].msg_len = 0;
  }
}

static void describe_slot(receiver_t *r, int i) {
  int32_t *m = r->meta + i * META_INTS;
  memset(m, 0, META_INTS * sizeof(int32_t));
  m[0] = (int32_t)r->msgs[i].msg_len; /* MSG_TRUNC: the length as sent, even if cut */
  const struct sockaddr_storage *a = &r->from[i];
  const socklen_t namelen = r->msgs[i].msg_hdr.msg_namelen;
  uint8_t *addr = (uint8_t *)&m[3];
  if (a->ss_family == AF_INET && namelen >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
    m[1] = 4;
    m[2] = ntohs(a4->sin_port);
    memcpy(addr, &a4->sin_addr, 4);
  } else if (a->ss_family == AF_INET6 && namelen >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
    m[2] = ntohs(a6->sin6_port);
    if (memcmp(a6->sin6_addr.s6_addr, V4_MAPPED, 12) == 0) {
      m[1] = 4;
      memcpy(addr, a6->sin6_addr.s6_addr + 12, 4);
    } else {
      m[1] = 6;
      memcpy(addr, a6->sin6_addr.s6_addr, 16);
    }
  } else {
    m[1] = 0; /* no usable source: JavaScript drops it */
  }
}

static void call_on_batch(receiver_t *r, int count) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, argv[1], result;
  if (napi_get_reference_value(env, r->on_batch, &fn) == napi_ok && fn != NULL &&
      napi_get_global(env, &recv) == napi_ok && napi_create_int32(env, count, &argv[0]) == napi_ok) {
    /* napi_make_callback, not napi_call_function: promises and process.nextTick callbacks that
     * the batch started run when it returns, as after any callback from the event loop. */
    if (napi_make_callback(env, r->context, recv, fn, 1, argv, &result) != napi_ok) {
      /* What a throwing 'message' listener does: the process's uncaught exception path. */
      bool pending = false;
      napi_value error;
      if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
          napi_get_and_clear_last_exception(env, &error) == napi_ok)
        napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  receiver_t *r = (receiver_t *)handle->data;
  (void)events;
  if (r->closed) return;
  if (status < 0) {
    /* libuv stopped this handle itself (POLLERR): say so; JavaScript restarts it. */
    r->polling = 0;
    call_on_batch(r, status < -1 ? status : -1);
    return;
  }
  for (int batch = 0; batch < BATCHES_PER_WAKEUP && r->polling && !r->closed; batch++) {
    reset_slots(r);
    int n = recvmmsg(r->fd, r->msgs, SLOTS, MSG_DONTWAIT | MSG_TRUNC, NULL);
    if (n <= 0) return; /* EAGAIN: drained; any other error (an ICMP report) is not ours */
    for (int i = 0; i < n; i++) describe_slot(r, i);
    call_on_batch(r, n);
    if (n < SLOTS) return;
  }
}

static napi_value throw_error(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

/* The receiver behind a handle argument: NULL with an exception for anything else, NULL without
 * one (*closed set) for a closed handle. */
static receiver_t *receiver_of(napi_env env, napi_callback_info info, bool *closed) {
  size_t argc = 1;
  napi_value arg;
  void *data = NULL;
  bool tagged = false;
  *closed = false;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1 ||
      napi_check_object_type_tag(env, arg, &HANDLE_TAG, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, arg, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "ERR_UDP_BATCH_ARGS", "not a udp-batch handle");
    return NULL;
  }
  receiver_t *r = ((handle_box_t *)data)->r;
  if (r == NULL) *closed = true;
  return r;
}

static void on_closed(uv_handle_t *handle) {
  receiver_t *r = (receiver_t *)handle->data;
  napi_delete_reference(r->env, r->on_batch);
  napi_delete_reference(r->env, r->payloads_ref);
  napi_delete_reference(r->env, r->meta_ref);
  napi_async_destroy(r->env, r->context);
  free(r);
}

/* Stops polling for good; `then` (on_closed: free the receiver, or NULL) runs once libuv has
 * closed the handle. The JavaScript handle finds NULL from here on. */
static void close_receiver(receiver_t *r, uv_close_cb then) {
  if (r->closed) return;
  r->closed = 1;
  r->polling = 0;
  if (r->box != NULL) r->box->r = NULL;
  r->box = NULL;
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t *)&r->poll, then);
}

/* The environment ends (process exit, a worker's end) with the receiver still open: a libuv
 * handle left open then aborts the process, so it is closed here. Without a close callback: this
 * module may be unloaded before libuv runs it (a worker's loop closes its handles after its
 * addons are gone). So the receiver's memory, which holds the handle, is left to the exit. */
static void on_env_teardown(void *data) { close_receiver((receiver_t *)data, NULL); }

static void on_box_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  handle_box_t *box = (handle_box_t *)data;
  if (box->r != NULL) box->r->box = NULL; /* still open: it just has no handle any more */
  free(box);
}

/* start(fd, payloads, meta, onBatch) -> handle; polling starts at once. */
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4)
    return throw_error(env, "ERR_UDP_BATCH_ARGS", "start(fd, payloads, meta, onBatch)");
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_error(env, "ERR_UDP_BATCH_ARGS", "fd must be a descriptor");
  void *payloads = NULL, *meta = NULL;
  size_t payloads_len = 0, meta_len = 0;
  if (napi_get_buffer_info(env, argv[1], &payloads, &payloads_len) != napi_ok ||
      payloads_len < (size_t)SLOTS * SLOT_BYTES)
    return throw_error(env, "ERR_UDP_BATCH_ARGS", "payloads must be a Buffer of SLOTS * SLOT_BYTES");
  if (napi_get_buffer_info(env, argv[2], &meta, &meta_len) != napi_ok ||
      meta_len < (size_t)SLOTS * META_INTS * sizeof(int32_t) || ((uintptr_t)meta % 4) != 0)
    return throw_error(env, "ERR_UDP_BATCH_ARGS", "meta must be an aligned Buffer of SLOTS * META_INTS int32s");
  napi_valuetype type;
  if (napi_typeof(env, argv[3], &type) != napi_ok || type != napi_function)
    return throw_error(env, "ERR_UDP_BATCH_ARGS", "onBatch must be a function");

  receiver_t *r = calloc(1, sizeof(receiver_t));
  if (r == NULL) return throw_error(env, "ERR_UDP_BATCH_NOMEM", "out of memory");
  r->env = env;
  r->fd = fd;
  r->payloads = payloads;
  r->meta = meta;
  for (int i = 0; i < SLOTS; i++) {
    r->iov[i].iov_base = r->payloads + (size_t)i * SLOT_BYTES;
    r->iov[i].iov_len = SLOT_BYTES;
    r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
    r->msgs[i].msg_hdr.msg_name = &r->from[i];
  }
  uv_loop_t *loop = NULL;
  napi_value name;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok ||
      napi_create_string_utf8(env, "spaknock:udp-batch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &r->context) != napi_ok) {
    free(r);
    return throw_error(env, "ERR_UDP_BATCH_INIT", "no event loop");
  }
  int rc = uv_poll_init(loop, &r->poll, fd);
  if (rc != 0) {
    napi_async_destroy(env, r->context);
    free(r);
    return throw_error(env, "ERR_UDP_BATCH_POLL", uv_strerror(rc));
  }
  r->poll.data = r;
  napi_create_reference(env, argv[3], 1, &r->on_batch);
  napi_create_reference(env, argv[1], 1, &r->payloads_ref);
  napi_create_reference(env, argv[2], 1, &r->meta_ref);
  rc = uv_poll_start(&r->poll, UV_READABLE, on_readable);
  if (rc != 0) {
    close_receiver(r, on_closed);
    return throw_error(env, "ERR_UDP_BATCH_POLL", uv_strerror(rc));
  }
  r->polling = 1;
  handle_box_t *box = calloc(1, sizeof(handle_box_t));
  napi_value external;
  if (box == NULL) {
    close_receiver(r, on_closed);
    return throw_error(env, "ERR_UDP_BATCH_NOMEM", "out of memory");
  }
  box->r = r;
  if (napi_create_external(env, box, on_box_finalized, NULL, &external) != napi_ok ||
      napi_type_tag_object(env, external, &HANDLE_TAG) != napi_ok) {
    free(box);
    close_receiver(r, on_closed);
    return throw_error(env, "ERR_UDP_BATCH_INIT", "cannot make a handle");
  }
  r->box = box;
  napi_add_env_cleanup_hook(env, on_env_teardown, r);
  return external;
}

/* pause(handle): datagrams wait in the socket buffer until resume. Nothing once closed. */
static napi_value pause_reads(napi_env env, napi_callback_info info) {
  bool closed;
  receiver_t *r = receiver_of(env, info, &closed);
  if (r != NULL && r->polling) {
    uv_poll_stop(&r->poll);
    r->polling = 0;
  }
  return NULL;
}

/* resume(handle) -> true, or false once closed or when polling cannot restart. */
static napi_value resume_reads(napi_env env, napi_callback_info info) {
  bool closed;
  receiver_t *r = receiver_of(env, info, &closed);
  if (r == NULL && !closed) return NULL; /* not a handle: the exception is pending */
  bool ok = r != NULL;
  if (ok && !r->polling) {
    ok = uv_poll_start(&r->poll, UV_READABLE, on_readable) == 0;
    r->polling = ok;
  }
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

/* close(handle): stops polling for good (before the socket is closed); the receiver is freed by
 * libuv's close callback. A second close does nothing. */
static napi_value close_reads(napi_env env, napi_callback_info info) {
  bool closed;
  receiver_t *r = receiver_of(env, info, &closed);
  if (r != NULL) {
    napi_remove_env_cleanup_hook(env, on_env_teardown, r);
    close_receiver(r, on_closed);
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {
      {"start", start}, {"pause", pause_reads}, {"resume", resume_reads}, {"close", close_reads}};
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value f;
    if (napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &f) !=
            napi_ok ||
        napi_set_named_property(env, exports, functions[i].name, f) != napi_ok)
      return NULL;
  }
  napi_value n;
  napi_create_int32(env, SLOTS, &n);
  napi_set_named_property(env, exports, "SLOTS", n);
  napi_create_int32(env, SLOT_BYTES, &n);
  napi_set_named_property(env, exports, "SLOT_BYTES", n);
  napi_create_int32(env, META_INTS, &n);
  napi_set_named_property(env, exports, "META_INTS", n);
  napi_create_int32(env, BATCHES_PER_WAKEUP, &n);
  napi_set_named_property(env, exports, "BATCHES", n);
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
