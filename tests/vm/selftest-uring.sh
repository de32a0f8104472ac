#!/usr/bin/env bash
# Guest script: io_uring is usable in the test VM (io_uring_setup succeeds
# and no sysctl disables it). Exits 0 / 1, or 77 if the kernel lacks io_uring.
#
#   tests/vm/run.sh tests/vm/selftest-uring.sh
set -euo pipefail

[ "${WCCL_VM:-}" = 1 ] || { echo "selftest-uring: run me through tests/vm/run.sh" >&2; exit 77; }

knob=/proc/sys/kernel/io_uring_disabled
if [ -r "$knob" ] && [ "$(cat "$knob")" != 0 ]; then
	echo "selftest-uring: $knob is $(cat "$knob")"
	exit 1
fi

# The distribution's python, not a pyenv shim: ctypes is all this needs.
/usr/bin/python3 - <<'PY'
import ctypes, errno, os, sys

SYS_io_uring_setup = 425
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
fd = libc.syscall(SYS_io_uring_setup, 8, params)
if fd < 0:
    err = ctypes.get_errno()
    print("selftest-uring: io_uring_setup:", os.strerror(err))
    sys.exit(77 if err == errno.ENOSYS else 1)
features = int.from_bytes(params.raw[20:24], "little")
print(f"selftest-uring: ok, io_uring fd {fd}, features 0x{features:x}")
os.close(fd)
PY
