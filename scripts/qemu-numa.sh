#!/bin/sh
# scripts/qemu-numa.sh [--build DIR] [--kernel VMLINUZ] [--fetch-kernel] [--ctest] [--full]
#
# SCALE-1 on a machine with two NUMA nodes, which this VM is not: boot a
# Debian kernel under QEMU as a q35 guest with 2 CPUs and 1 GiB in two
# nodes (CPU 0 + 512 MiB, CPU 1 + 512 MiB, distance 21), from a tiny
# initramfs made here: busybox plus the test and benchmark binaries of DIR
# (default build/default) and the shared libraries they load, each at the
# path it has on this machine.  Inside:
#   - thothctl topology: hwloc reading the guest's two nodes;
#   - test_numa_channel, whose two-node test (skipped on one node) runs a
#     client on node 0 and a service on node 1 with THOTH_NUMA at its
#     default and checks with get_mempolicy/move_pages that every page of
#     each read range is on its reader's node;
#   - bench_scale section 6: the cross-node channel round trip placed vs
#     NUMA-oblivious vs hand-pinned, with page locations.
# and print the guest's console here.
#
# Accelerator (THOTH_VM_ACCEL=auto|kvm|tcg, default auto): KVM when
# /dev/kvm can run this guest, else TCG (pure emulation) with a message
# saying why.  auto tries KVM when /dev/kvm is readable and writable and is
# not kvm-pvm, and falls back to TCG when QEMU cannot start under KVM or
# the guest has not reached its init within THOTH_VM_KVM_BOOT_S seconds
# (default 60; a KVM boot takes a few).  kvm-pvm (PVM: KVM without VMX,
# the guest kernel runs in ring 3) runs only guest kernels built for it
# (CONFIG_PVM_GUEST, virt-pvm/linux); Debian's is not one, and under it
# never gets out of the decompressor (docs/SCALE.md), so auto does not try
# it: THOTH_VM_ACCEL=kvm with --kernel A_PVM_GUEST_KERNEL does, and fails
# rather than fall back.
#
# Size: THOTH_VM_CPUS (even, default 2): half the CPUs on each node.  Two,
# one per node, is what the checks need (a client pinned on node 0, its
# service on node 1) and what this 2-vCPU host can give without its vCPU
# threads queueing behind each other; 4 was the size before (two per node).
#
# What TCG shows and what it cannot: the guest kernel is real, so policies
# and page locations are real results.  Time is not: emulated, and QEMU
# gives every node the same host memory (no remote-memory latency is
# modelled, under KVM either, unless the host's own nodes back the guest's),
# so the benchmark's ratios say nothing about SCALE-1's 1.3x target.
#
# The kernel is never downloaded while testing.  It is found at --kernel,
# $THOTH_VM_KERNEL, or DIR/numa-vm/vmlinuz, which --fetch-kernel fills from
# the Debian package (`apt-get download` of the linux-image-amd64 kernel,
# vmlinuz taken out with dpkg-deb; `make numa-vm` does this).
#
# Exit: 0 passed, 1 failed, 77 skipped (qemu, busybox or the kernel image
# missing, or --ctest without THOTH_NUMA_VM=1: a run under TCG takes
# ~30 s on two loaded CPUs, so `make test` leaves it out; `make numa-vm` runs it).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build/default
KERNEL=${THOTH_VM_KERNEL:-}
FETCH=0
CTEST=0
QUICK=--quick
TIMEOUT=${THOTH_VM_TIMEOUT:-900}
ACCEL=${THOTH_VM_ACCEL:-auto}
CPUS=${THOTH_VM_CPUS:-2}
KVM_BOOT_S=${THOTH_VM_KVM_BOOT_S:-60}
while [ $# -gt 0 ]; do
	case $1 in
	--build) BUILD=$(cd "$2" && pwd); shift ;;
	--kernel) KERNEL=$2; shift ;;
	--fetch-kernel) FETCH=1 ;;
	--ctest) CTEST=1 ;;
	--full) QUICK= ;;
	*) echo "usage: $0 [--build DIR] [--kernel VMLINUZ] [--fetch-kernel] [--ctest] [--full]" >&2; exit 2 ;;
	esac
	shift
done

skip() { echo "qemu-numa: skipped: $*"; exit 77; }
fail() { echo "qemu-numa: FAILED: $*"; exit 1; }

case $ACCEL in auto|kvm|tcg) ;; *) echo "qemu-numa: THOTH_VM_ACCEL is auto, kvm or tcg, not $ACCEL" >&2; exit 2 ;; esac
case $CPUS in *[!0-9]*|''|0|*[13579]) echo "qemu-numa: THOTH_VM_CPUS must be even and at least 2, not $CPUS" >&2; exit 2 ;; esac

if [ $CTEST = 1 ] && [ "${THOTH_NUMA_VM:-}" != 1 ]; then
	skip "needs THOTH_NUMA_VM=1 (and qemu-system-x86, busybox-static, the kernel \`make numa-vm\` fetches): a 2-node guest takes ~30 s under TCG, and KVM cannot run it on every machine; run \`make numa-vm\` (or THOTH_NUMA_VM=1 ctest -R test_numa_vm)"
fi
QEMU=$(command -v qemu-system-x86_64 || true)
[ -n "$QEMU" ] || skip "qemu-system-x86_64 is not installed (Debian qemu-system-x86; \`make numa-vm\` installs it)"
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || skip "busybox is not installed (Debian busybox-static)"

VMDIR=$BUILD/numa-vm
mkdir -p "$VMDIR"
if [ -z "$KERNEL" ] && [ -r "$VMDIR/vmlinuz" ]; then
	KERNEL=$VMDIR/vmlinuz
fi
if [ -z "$KERNEL" ] && [ $FETCH = 1 ]; then
	# The kernel package linux-image-amd64 points at (a metapackage).
	PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
	[ -n "$PKG" ] || fail "apt-cache knows no linux-image-amd64 (run apt-get update)"
	echo "qemu-numa: fetching $PKG (Debian package, ~70 MB) for its vmlinuz"
	rm -rf "$VMDIR/deb" && mkdir -p "$VMDIR/deb"
	(cd "$VMDIR/deb" && apt-get download "$PKG" >/dev/null 2>&1) || fail "apt-get download $PKG"
	# Only the kernel image: the package's 400 MB of modules are not needed
	# (serial console, initramfs, NUMA and memfd are built in).
	dpkg-deb --fsys-tarfile "$VMDIR"/deb/*.deb | (cd "$VMDIR/deb" && tar -x --wildcards './boot/vmlinuz-*') ||
		fail "dpkg-deb could not extract vmlinuz from $PKG"
	mv "$VMDIR"/deb/boot/vmlinuz-* "$VMDIR/vmlinuz"
	echo "$PKG" > "$VMDIR/vmlinuz.package"
	rm -rf "$VMDIR/deb"
	KERNEL=$VMDIR/vmlinuz
fi
[ -n "$KERNEL" ] || skip "no kernel image: give --kernel, set THOTH_VM_KERNEL, or run \`make numa-vm\` (fetches Debian's once)"
[ -r "$KERNEL" ] || fail "kernel image $KERNEL is not readable"

# Boot the kernel uncompressed, by its PVH entry (QEMU loads an ELF
# vmlinux with the XEN_ELFNOTE_PHYS32_ENTRY note straight into memory):
# firmware and the xz decompressor under TCG took 15-20 s of every run,
# the direct boot ~2 s (docs/SCALE.md).  Taken out of a bzImage here, once
# per image (VMDIR/vmlinux, with the image it came from in vmlinux.from);
# without xz, or for a kernel without PVH (CONFIG_PVH), the bzImage boots,
# and THOTH_VM_PVH=0 boots it anyway (to compare).
BOOT_KERNEL=$KERNEL
has_pvh() { LC_ALL=C readelf -n "$1" 2>/dev/null | grep -Eq 'Xen.*(\(0x00000012\)|PHYS32)'; }
if head -c 4 "$KERNEL" | grep -q 'ELF' || [ "${THOTH_VM_PVH:-1}" = 0 ]; then
	:                                       # already a vmlinux, or asked for the bzImage
elif command -v xz >/dev/null && command -v readelf >/dev/null; then
	FROM="$(cd "$(dirname "$KERNEL")" && pwd)/$(basename "$KERNEL") $(wc -c < "$KERNEL") $(stat -c %Y "$KERNEL")"
	if [ ! -r "$VMDIR/vmlinux" ] || [ "$(cat "$VMDIR/vmlinux.from" 2>/dev/null)" != "$FROM" ]; then
		rm -f "$VMDIR/vmlinux" "$VMDIR/vmlinux.from"
		# The payload is the first xz stream in the image (CONFIG_KERNEL_XZ, Debian's).
		AT=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$KERNEL" 2>/dev/null | head -1 | cut -d: -f1)
		if [ -n "$AT" ] && tail -c +$((AT + 1)) "$KERNEL" | xz -dc --single-stream > "$VMDIR/vmlinux.tmp" 2>/dev/null &&
			has_pvh "$VMDIR/vmlinux.tmp"; then
			mv "$VMDIR/vmlinux.tmp" "$VMDIR/vmlinux"
			echo "$FROM" > "$VMDIR/vmlinux.from"
		else
			rm -f "$VMDIR/vmlinux.tmp"
			echo "qemu-numa: $KERNEL has no xz payload with a PVH entry: booting it compressed (slower under TCG)"
		fi
	fi
	[ ! -r "$VMDIR/vmlinux" ] || BOOT_KERNEL=$VMDIR/vmlinux
else
	echo "qemu-numa: no xz or readelf (xz-utils, binutils): booting $KERNEL compressed (slower under TCG)"
fi

# What runs inside, from this build.
TEST=$BUILD/tests/scale/test_numa_channel
BENCH=$BUILD/bench/scale/bench_scale
THOTHCTL=$BUILD/tools/thothctl/thothctl
CHAN_SERVICE=$BUILD/tests/ipc/chan_service
RTEST=$BUILD/tests/scale/test_rtable_thothd
THOTHD=$BUILD/kernel/thothd/thothd
for f in "$TEST" "$BENCH" "$THOTHCTL" "$CHAN_SERVICE" "$RTEST" "$THOTHD"; do
	[ -x "$f" ] || fail "$f is not built (cmake --build $BUILD --target test_numa_channel chan_service bench_scale thothctl test_rtable_thothd thothd)"
done

# The initramfs: every binary and every library it loads at the path it
# has here (RUNPATHs into the build tree keep working), debug info
# stripped, uncompressed (an emulated CPU would spend seconds on gunzip).
IR=$VMDIR/root
rm -rf "$IR"
mkdir -p "$IR/bin" "$IR/proc" "$IR/sys" "$IR/dev" "$IR/tmp"
copy() {        # copy FILE to the same path under $IR, debug info stripped
	mkdir -p "$IR$(dirname "$1")"
	cp -L "$1" "$IR$1"
	strip --strip-debug "$IR$1" 2>/dev/null || true
}
for f in "$BUSYBOX" "$TEST" "$BENCH" "$THOTHCTL" "$CHAN_SERVICE" "$RTEST" "$THOTHD"; do
	copy "$f"
	ldd "$f" 2>/dev/null | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]+ \(/ { print $1 }' | while read -r lib; do
		[ -e "$IR$lib" ] || copy "$lib"
	done
done
[ "$BUSYBOX" = /bin/busybox ] || cp "$IR$BUSYBOX" "$IR/bin/busybox"
# The test's topology fixtures (XML exports), at the path it was built with.
mkdir -p "$IR$ROOT/tests/fixtures"
cp -r "$ROOT/tests/fixtures/topology" "$IR$ROOT/tests/fixtures/"
cat > "$IR/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo "THOTH-VM: nodes online \$(cat /sys/devices/system/node/online), cpus \$(cat /sys/devices/system/cpu/online), uptime \$(cut -d' ' -f1 /proc/uptime) s"
for n in /sys/devices/system/node/node*; do
	echo "THOTH-VM: \${n##*/} cpus \$(cat \$n/cpulist) distances \$(cat \$n/distance)"
done
run() {
	name=\$1; shift
	echo "THOTH-VM: begin \$name"
	timeout 600 "\$@" 2>&1
	echo "THOTH-VM: \$name rc=\$?"
}
run topology $THOTHCTL topology
run test_numa_channel $TEST
run test_rtable_thothd $RTEST
run bench_cross_node $BENCH $QUICK --section 6
echo "THOTH-VM: done, uptime \$(cut -d' ' -f1 /proc/uptime) s"
poweroff -f
EOF
chmod +x "$IR/init"
(cd "$IR" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null) > "$VMDIR/initramfs.cpio"
echo "qemu-numa: kernel $KERNEL$( [ -r "$VMDIR/vmlinuz.package" ] && [ "$KERNEL" = "$VMDIR/vmlinuz" ] && echo " ($(cat "$VMDIR/vmlinuz.package"))")$( [ "$BOOT_KERNEL" = "$KERNEL" ] || echo ", booted uncompressed by its PVH entry"), initramfs $(($(wc -c < "$VMDIR/initramfs.cpio") / 1048576)) MiB"

# Can /dev/kvm run this guest?  Sets KVM_WHY when it cannot (auto only).
kvm_probe() {
	if [ ! -c /dev/kvm ]; then
		KVM_WHY="no /dev/kvm"
	elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		KVM_WHY="/dev/kvm is not readable and writable here"
	elif [ -d /sys/module/kvm_pvm ] && [ ! -d /sys/module/kvm_intel ] && [ ! -d /sys/module/kvm_amd ]; then
		KVM_WHY="/dev/kvm is kvm-pvm (PVM, KVM without VMX), which runs only guest kernels built for it (CONFIG_PVM_GUEST); this kernel would stay in PVM's instruction emulator (THOTH_VM_ACCEL=kvm --kernel A_PVM_GUEST_KERNEL to try one)"
	else
		return 0
	fi
	return 1
}

HALF=$((CPUS / 2))
LOG=$VMDIR/console.log
QPID=
# QEMU runs in the background (the watchdog below): it goes when we do.
trap '[ -z "$QPID" ] || kill $QPID 2>/dev/null || true' EXIT
trap 'exit 1' INT TERM
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# boot tcg|kvm: run the guest to its end.  QRC is QEMU's exit status (124
# past THOTH_VM_TIMEOUT), BOOT_MS the host's time to the guest's first
# line, RUN_MS the whole run; returns 2 when a KVM guest did not reach its
# init within KVM_BOOT_S (QEMU killed; nothing ran).
boot() {
	if [ "$1" = kvm ]; then set -- -accel kvm -cpu host; else set -- -accel tcg -cpu max; fi
	# PVM supports qboot, not SeaBIOS (virt-pvm's guide); untried here for
	# want of a PVM guest kernel.
	if [ "$1" = -accel ] && [ "$2" = kvm ] && [ -d /sys/module/kvm_pvm ] && [ -r /usr/share/qemu/qboot.rom ]; then
		set -- "$@" -bios /usr/share/qemu/qboot.rom
	fi
	: > "$LOG"
	BOOT_MS=
	T0=$(now_ms)
	# -no-reboot + panic=-1: a kernel panic ends QEMU instead of looping.
	"$QEMU" -machine q35 "$@" -smp "$CPUS" -m 1G -nodefaults -net none \
		-object memory-backend-ram,id=m0,size=512M -object memory-backend-ram,id=m1,size=512M \
		-numa node,nodeid=0,cpus=0-$((HALF - 1)),memdev=m0 -numa node,nodeid=1,cpus=$HALF-$((CPUS - 1)),memdev=m1 \
		-numa dist,src=0,dst=1,val=21 \
		-kernel "$BOOT_KERNEL" -initrd "$VMDIR/initramfs.cpio" \
		-append "console=ttyS0 quiet panic=-1 rdinit=/init" \
		-display none -serial "file:$LOG" -monitor none -no-reboot </dev/null &
	QPID=$!
	while kill -0 $QPID 2>/dev/null; do
		t=$(($(now_ms) - T0))
		if [ -z "$BOOT_MS" ] && grep -q 'THOTH-VM: nodes online' "$LOG"; then
			BOOT_MS=$t
		fi
		if [ "$ACC" = kvm ] && [ -z "$BOOT_MS" ] && [ $t -ge $((KVM_BOOT_S * 1000)) ]; then
			kill $QPID 2>/dev/null || true
			wait $QPID 2>/dev/null || true
			QPID=
			return 2
		fi
		if [ $t -ge $((TIMEOUT * 1000)) ]; then
			kill $QPID 2>/dev/null || true
			wait $QPID 2>/dev/null || true
			QPID=
			QRC=124
			RUN_MS=$t
			return 0
		fi
		sleep 0.2
	done
	set +e
	wait $QPID
	QRC=$?
	set -e
	QPID=
	RUN_MS=$(($(now_ms) - T0))
	[ -n "$BOOT_MS" ] || ! grep -q 'THOTH-VM: nodes online' "$LOG" || BOOT_MS=$RUN_MS
	return 0
}

ACC=tcg
case $ACCEL in
kvm) ACC=kvm ;;
auto) if kvm_probe; then ACC=kvm; else echo "qemu-numa: not KVM: $KVM_WHY; TCG (emulation) instead"; fi ;;
esac
cpus_of() { if [ "$1" = "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }
SHAPE="$CPUS CPUs, 2 nodes (CPUs $(cpus_of 0 $((HALF - 1))) and $(cpus_of $HALF $((CPUS - 1)))), 512 MiB each, distance 21"
echo "qemu-numa: booting a q35 guest under $(echo $ACC | tr a-z A-Z): $SHAPE"
set +e
boot $ACC
BRC=$?
set -e
if [ $BRC = 2 ] || { [ $ACC = kvm ] && [ -z "$BOOT_MS" ] && [ $QRC != 124 ]; }; then
	WHY="under KVM the guest did not reach its init in ${KVM_BOOT_S}s (THOTH_VM_KVM_BOOT_S)"
	[ $BRC = 2 ] || WHY="QEMU could not run the guest under KVM (exit $QRC)"
	if [ -s "$LOG" ]; then tr -d '\r' < "$LOG" | tail -5 | sed 's/^/qemu-numa:   console: /'; else echo "qemu-numa:   (the console is empty)"; fi
	[ $ACCEL = auto ] || fail "$WHY"
	echo "qemu-numa: $WHY; TCG (emulation) instead"
	ACC=tcg
	echo "qemu-numa: booting a q35 guest under TCG: $SHAPE"
	boot tcg
fi
echo "qemu-numa: guest ran $((RUN_MS / 1000)).$(printf %03d $((RUN_MS % 1000))) s under $ACC, its init reached after ${BOOT_MS:-?} ms (qemu exit $QRC); console:"
tr -d '\r' < "$LOG" | sed -n '/^THOTH-VM: nodes/,$p'
[ $QRC = 0 ] || fail "qemu exited $QRC (timeout ${TIMEOUT}s: THOTH_VM_TIMEOUT)"

LOGT=$(tr -d '\r' < "$LOG")
echo "$LOGT" | grep -q '^THOTH-VM: done' || fail "the guest did not finish its script"
echo "$LOGT" | grep -q '^THOTH-VM: nodes online 0-1,' || fail "the guest does not have nodes 0-1 online"
# The SLIT given to QEMU, as the guest kernel reads it.
echo "$LOGT" | grep -q '^THOTH-VM: node0 cpus .* distances 10 21$' || fail "node 0's distances are not 10 21"
echo "$LOGT" | grep -q '^THOTH-VM: node1 cpus .* distances 21 10$' || fail "node 1's distances are not 21 10"
for step in topology test_numa_channel test_rtable_thothd bench_cross_node; do
	echo "$LOGT" | grep -q "^THOTH-VM: $step rc=0\$" || fail "$step failed in the guest"
done
# The two-node test must have run, not skipped, and the benchmark must
# have measured, not skipped.
echo "$LOGT" | grep -q 'OK \] test_on_two_nodes_every_page_lands_on_its_readers_node' ||
	fail "the two-node placement test did not run and pass"
echo "$LOGT" | grep -q 'OK \] test_on_two_nodes_a_caller_is_given_the_instance_on_its_node' ||
	fail "the two-node resolve test did not run and pass"
echo "$LOGT" | grep -q 'placed: .* of hand-pinned throughput' || fail "the cross-node benchmark did not run"
if [ $ACC = kvm ]; then
	echo "qemu-numa: passed under KVM (placement and page locations on a real 2-node kernel; both nodes share the host's memory: no remote-memory cost)"
else
	echo "qemu-numa: passed under TCG (placement and page locations on a real 2-node kernel; timings are emulated: see above)"
fi
