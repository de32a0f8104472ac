/* SPDX-License-Identifier: MIT */
#ifndef WCCL_ERRORS_H
#define WCCL_ERRORS_H

/*
 * Every wccl call returns 0 (or a count) on success and a negative code on
 * failure; errno is never used to report errors. Codes that mirror a POSIX
 * error equal its negated errno value, so a provider can pass a kernel
 * result straight through. wccl's own codes sit below -1000, a range no
 * errno uses.
 *
 * The list is one X-macro so the enum, wccl_strerror() and wccl_err_name()
 * cannot drift apart.
 */
#include <errno.h>

/* clang-format off */
#define WCCL_ERROR_LIST(X)                                                      \
	X(EPERM, -EPERM, "operation not permitted")                             \
	X(ENOENT, -ENOENT, "no such object")                                    \
	X(EINTR, -EINTR, "interrupted")                                         \
	X(EIO, -EIO, "input/output error")                                      \
	X(EBADF, -EBADF, "bad handle")                                          \
	X(EAGAIN, -EAGAIN, "not yet, try again (queue full or still pending)")  \
	X(ENOMEM, -ENOMEM, "out of memory")                                     \
	X(EACCES, -EACCES, "permission denied")                                 \
	X(EFAULT, -EFAULT, "bad address")                                       \
	X(EBUSY, -EBUSY, "resource busy (objects still use it)")                \
	X(EEXIST, -EEXIST, "already exists")                                    \
	X(ENODEV, -ENODEV, "provider or device not available on this host")     \
	X(EINVAL, -EINVAL, "invalid argument")                                  \
	X(ENOSPC, -ENOSPC, "no space left")                                     \
	X(ERANGE, -ERANGE, "value out of range")                                \
	X(ENOSYS, -ENOSYS, "not implemented by the kernel")                     \
	X(EPROTO, -EPROTO, "protocol error: malformed or unexpected message")   \
	X(EMSGSIZE, -EMSGSIZE, "message too long")                              \
	X(EPROTONOSUPPORT, -EPROTONOSUPPORT, "peer speaks another wire version") \
	X(EOPNOTSUPP, -EOPNOTSUPP, "operation not supported by this provider")  \
	X(EADDRINUSE, -EADDRINUSE, "address already in use")                    \
	X(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available")               \
	X(ENETUNREACH, -ENETUNREACH, "network unreachable")                     \
	X(ECONNABORTED, -ECONNABORTED, "connection aborted")                    \
	X(ECONNRESET, -ECONNRESET, "connection reset by peer")                  \
	X(ENOTCONN, -ENOTCONN, "endpoint not connected (yet)")                  \
	X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                   \
	X(ECONNREFUSED, -ECONNREFUSED, "connection refused (nobody listens)")   \
	X(EHOSTUNREACH, -EHOSTUNREACH, "host unreachable")                      \
	X(ECANCELED, -ECANCELED, "canceled: endpoint closed before completion") \
	X(EREMOTE_KEY, -1001, "remote: unknown memory key")                      \
	X(EREMOTE_BOUNDS, -1002, "remote: write outside the registered region")  \
	X(EREMOTE_ACCESS, -1003, "remote: region does not allow remote writes")  \
	X(ETRUNCATED, -1004, "message larger than the posted receive buffer")    \
	X(EPEER_LOST, -1005, "peer closed the connection or died")               \
	X(EMISMATCH, -1006, "arguments differ between ranks")                    \
	X(EAUTH, -1007, "authentication failed")                                 \
	X(EABORTED, -1008, "aborted")                                            \
	X(EINTERNAL, -1009, "internal error (a wccl bug)")                       \
	X(EREMOTE, -1010, "remote peer reported an error")
/* clang-format on */

enum wccl_error {
	WCCL_OK = 0,
#define WCCL_ERROR_ENUM(name, value, text) WCCL_##name = (value),
	WCCL_ERROR_LIST(WCCL_ERROR_ENUM)
#undef WCCL_ERROR_ENUM
};

#ifdef __cplusplus
extern "C" {
#endif

/* Human-readable text for a code (0, any WCCL_* code, or any -errno).
 * Never NULL; the string is static. */
const char *wccl_strerror(int err);

/* Symbolic name of a code, e.g. "WCCL_ETIMEDOUT"; "WCCL_UNKNOWN" if none. */
const char *wccl_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
