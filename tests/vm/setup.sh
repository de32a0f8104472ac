#!/usr/bin/env bash
# Prepares the soft-RoCE VM test bed: the host packages it needs, a Debian
# generic kernel unpacked into a cache outside the repo, and a tiny busybox
# initramfs. Idempotent: a warm run only compares stamps (well under 1 s) and
# downloads nothing.
#
# Usage: setup.sh [--refresh]
#   --refresh   resolve the kernel version again and fetch it if it changed
# Prints the path of the selected kernel.env on stdout (run.sh sources it);
# everything else goes to stderr.
#
# Environment:
#   WCCL_VM_CACHE   cache directory (default /var/cache/wccl-vm)
#   WCCL_VM_KERNEL  auto (default) | backports | bookworm
#   WCCL_VM_MIRROR  Debian mirror for trixie-backports (default: the host's)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${WCCL_VM_CACHE:-/var/cache/wccl-vm}
want=${WCCL_VM_KERNEL:-auto}
refresh=0

host_pkgs=(qemu-system-x86 busybox-static cpio kmod xz-utils zstd rdma-core
	ibverbs-utils ibverbs-providers rdmacm-utils perftest iproute2 ethtool iputils-ping)
# Modules the initramfs needs before it can reach the 9p root.
boot_mods=(virtio_pci 9pnet_virtio 9p overlay)
# Bump when the initramfs layout changes so stale ones get rebuilt.
initrd_format=1

log() { printf 'setup.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

ensure_host_packages() {
	local -A have=()
	local p missing=()
	while read -r p st; do
		[ "$st" = installed ] && have[$p]=1
	done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${host_pkgs[@]}" 2>/dev/null || true)
	for p in "${host_pkgs[@]}"; do
		[ -n "${have[$p]:-}" ] || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}; run as root"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# The Debian mirror the host already uses, so backports come from the same place.
host_mirror() {
	local f uri
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		uri=$(awk '
			/^deb[ \t]/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }
			/^URIs:/    { print $2; exit }' "$f" | grep -m1 -E '/debian/?$' || true)
		if [ -n "$uri" ]; then
			echo "${uri%/}"
			return
		fi
	done
	echo http://deb.debian.org/debian
}

# apt with its own sources, lists, cache and empty dpkg status: resolving
# trixie-backports must not touch the host's apt configuration or state.
private_apt_init() {
	local a=$cache/apt
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/empty"
	: >"$a/status"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${WCCL_VM_MIRROR:-$(host_mirror)} trixie-backports main" \
		>"$a/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$a/sources.list" -o "Dir::Etc::SourceParts=$a/empty"
		-o "Dir::Etc::Preferences=$a/empty/none" -o "Dir::Etc::PreferencesParts=$a/empty"
		-o "Dir::State::Lists=$a/lists" -o "Dir::State::status=$a/status"
		-o "Dir::Cache=$a/cache" -o "Acquire::Languages=none")
	apt-get "${apt_opts[@]}" -qq --error-on=any update >&2
}

# Prints "name=version" for PKG and, recursively, the linux-{image,modules,
# binary,base}-* packages it depends on: newer kernels split vmlinuz, the
# modules and modules.builtin/order into those.
kernel_closure() {
	local pkg=$1 info ver deps d
	info=$(apt-cache "${apt_opts[@]}" show --no-all-versions "$pkg" 2>/dev/null) || return 1
	ver=$(sed -n 's/^Version: //p' <<<"$info")
	echo "$pkg=$ver"
	deps=$(sed -n 's/^Depends: //p' <<<"$info" | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/[[:space:]]//g')
	for d in $deps; do
		[[ $d =~ ^linux-(image|modules|binary|base)- ]] && kernel_closure "$d"
	done
	return 0
}

# Downloads and unpacks SUITE's generic kernel into $cache/SUITE and runs
# depmod. Called where a failure means "fall back", so set -e is off inside:
# each step that matters checks for itself.
fetch_kernel() {
	local suite=$1 sdir=$cache/$1 pkgs pkg_list p top kver moddir vmlinuz
	apt_opts=()
	if [ "$suite" = backports ]; then
		private_apt_init || return 1
	elif ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
		apt-get update -qq >&2
	fi
	pkgs=$(kernel_closure linux-image-amd64 | awk '!seen[$0]++') || return 1
	top=$(head -n1 <<<"$pkgs")
	if [ -f "$sdir/kernel.ok" ] && [ "$(head -n1 "$sdir/kernel.ok")" = "$top" ]; then
		return 0 # --refresh found the version we already have
	fi
	log "fetching $suite kernel: $(tr '\n' ' ' <<<"$pkgs")"
	rm -rf "$sdir"
	mkdir -p "$sdir/debs" "$sdir/root"
	# apt-get download writes into the current directory.
	mapfile -t pkg_list <<<"$pkgs"
	(cd "$sdir/debs" && apt-get "${apt_opts[@]}" -qq -o APT::Sandbox::User=root download "${pkg_list[@]}" >&2) ||
		return 1
	for p in "$sdir"/debs/*.deb; do
		dpkg -x "$p" "$sdir/root" || return 1
	done
	# The unpacked tree is the cache; the .debs would only double its size.
	rm -rf "$sdir/debs"
	# Merged-/usr kernels ship /usr/lib/modules (vmlinuz inside it); older
	# ones /lib/modules and /boot/vmlinuz-VER.
	moddir=$(find "$sdir/root" -path '*/lib/modules/*/kernel' -type d | head -n1)
	moddir=${moddir%/kernel}
	[ -n "$moddir" ] || die "no modules in the $suite kernel packages"
	kver=$(basename "$moddir")
	vmlinuz=$moddir/vmlinuz
	[ -f "$vmlinuz" ] || vmlinuz=$sdir/root/boot/vmlinuz-$kver
	[ -f "$vmlinuz" ] || die "no vmlinuz in the $suite kernel packages"
	depmod -b "${moddir%/lib/modules/*}" "$kver" || return 1
	cat >"$sdir/kernel.env" <<-EOF
		# Written by tests/vm/setup.sh
		WCCL_VM_KSUITE=$suite
		WCCL_VM_KPKG=$top
		WCCL_VM_KVER=$kver
		WCCL_VM_VMLINUZ=$vmlinuz
		WCCL_VM_MODDIR=$moddir
		WCCL_VM_INITRD=$sdir/initrd.cpio
	EOF
	printf '%s\n' "$top" >"$sdir/kernel.ok"
}

# Copies boot module NAME and its dependencies (dependency first) into the
# initramfs staging dir, decompressed because busybox insmod can't unpack.
stage_module() {
	local name=$1 stage=$2 moddir=$3 line path f
	name=${name//-/_}
	line=$(grep -E "(^|/)(${name}|${name//_/-})\.ko(\.[a-z]+)?:" "$moddir/modules.dep" || true)
	if [ -z "$line" ]; then
		grep -qE "/(${name}|${name//_/-})\.ko$" "$moddir/modules.builtin" && return 0
		die "module $name is neither built in nor in modules.dep"
	fi
	# modules.dep lists dependencies so that the last must load first.
	for path in $(tac -s ' ' <<<"${line#*:} " | tr ' ' '\n') "${line%%:*}"; do
		[ -n "$path" ] || continue
		f=$(basename "$path")
		f=${f%.xz}
		f=${f%.zst}
		f=${f%.gz}
		grep -qxF "$f" "$stage/modules/order" 2>/dev/null && continue
		case "$path" in
		*.xz) xz -dc "$moddir/$path" >"$stage/modules/$f" ;;
		*.zst) zstd -qdc "$moddir/$path" >"$stage/modules/$f" ;;
		*.gz) gzip -dc "$moddir/$path" >"$stage/modules/$f" ;;
		*) cp "$moddir/$path" "$stage/modules/$f" ;;
		esac
		echo "$f" >>"$stage/modules/order"
	done
}

initrd_stamp() {
	{
		echo "format $initrd_format ${boot_mods[*]}"
		head -n1 "$1/kernel.ok"
		sha256sum "$here/guest-init.sh" /bin/busybox
	} | sha256sum | cut -d' ' -f1
}

build_initrd() {
	local sdir=$1 stage a
	# shellcheck source=/dev/null
	. "$sdir/kernel.env"
	stage=$(mktemp -d "$sdir/initrd.XXXXXX")
	mkdir -p "$stage"/{bin,dev,proc,sys,lower,rw,newroot,modules}
	cp /bin/busybox "$stage/bin/busybox"
	for a in sh mount umount mkdir insmod chroot cat echo ln mv cut sleep poweroff sync ip; do
		ln -s busybox "$stage/bin/$a"
	done
	: >"$stage/modules/order"
	for a in "${boot_mods[@]}"; do
		stage_module "$a" "$stage" "$WCCL_VM_MODDIR"
	done
	cp "$here/guest-init.sh" "$stage/init"
	chmod 755 "$stage/init"
	# The kernel's module auto-loader runs in init's root, which is the
	# initramfs: hop into the real root where kmod and the module tree are.
	printf '#!/bin/sh\nexec /bin/chroot /newroot /sbin/modprobe "$@"\n' >"$stage/bin/modprobe-chroot"
	chmod 755 "$stage/bin/modprobe-chroot"
	(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --quiet -R 0:0) >"$sdir/initrd.cpio.tmp"
	mv "$sdir/initrd.cpio.tmp" "$sdir/initrd.cpio"
	rm -rf "$stage"
	initrd_stamp "$sdir" >"$sdir/initrd.ok"
}

suite_ready() {
	[ -f "$cache/$1/kernel.ok" ] && [ -f "$cache/$1/initrd.ok" ] &&
		[ "$(cat "$cache/$1/initrd.ok")" = "$(initrd_stamp "$cache/$1")" ]
}

have_kernel() {
	[ -f "$cache/$1/kernel.ok" ] && [ "$refresh" = 0 ] && return 0
	fetch_kernel "$1" && return 0
	# A refresh that cannot reach the archive keeps what is cached.
	[ -f "$cache/$1/kernel.ok" ] && log "could not refresh the $1 kernel; keeping the cached one"
}

main() {
	local suite
	[ "${1:-}" = --refresh ] && refresh=1
	case "$want" in
	auto | backports | bookworm) ;;
	*) die "WCCL_VM_KERNEL must be auto, backports or bookworm" ;;
	esac
	mkdir -p "$cache"
	# Parallel meson tests may all call setup.sh at once: one does the work.
	exec 9>"$cache/lock"
	flock 9
	ensure_host_packages

	if [ "$want" != auto ]; then
		suite=$want
		have_kernel "$suite" || die "could not fetch the $suite kernel"
	else
		# Stay on what auto picked before, unless asked to look again.
		suite=backports
		[ "$refresh" = 1 ] || suite=$(cat "$cache/selected" 2>/dev/null || echo backports)
		if ! have_kernel "$suite"; then
			[ "$suite" = backports ] || die "could not fetch the $suite kernel"
			log "trixie-backports kernel unavailable; falling back to bookworm"
			suite=bookworm
			have_kernel "$suite" || die "could not fetch the bookworm kernel"
		fi
		# Records which kernel auto picked so later runs stay on it.
		[ "$(cat "$cache/selected" 2>/dev/null)" = "$suite" ] || echo "$suite" >"$cache/selected"
	fi
	if ! suite_ready "$suite"; then
		log "building initramfs for $suite"
		build_initrd "$cache/$suite"
	fi
	echo "$cache/$suite/kernel.env"
}

main "$@"
