# shellcheck shell=bash
# The WAN profiles' numbers, shared by wan-profile.sh (netem in the VM) and
# perf/stream/emu-link.sh (wan-emu on a host without netem).
# wccl_wan_profile NAME -> "RTT_ms jitter_ms loss_percent"; 1 if unknown.
wccl_wan_profile() {
	case "$1" in
	metro) echo "2 0 0" ;;
	east-west) echo "40 2 0.01" ;;
	lossy) echo "40 0 0.1" ;;
	intercontinental) echo "150 0 0.5" ;;
	delay20) echo "20 0 0" ;;
	*) return 1 ;;
	esac
}

# wccl_rate_mbit RATE: a tc rate (100mbit, 1gbit, 500kbit) in Mbit/s.
wccl_rate_mbit() {
	python3 -c '
import re, sys
m = re.fullmatch(r"([0-9.]+)([kmg]?)bit", sys.argv[1].lower())
if not m: sys.exit("bad rate " + sys.argv[1] + " (tc units: 100mbit)")
print(float(m.group(1)) * {"": 1e-6, "k": 1e-3, "m": 1, "g": 1e3}[m.group(2)])' "$1"
}
