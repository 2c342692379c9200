# Sourced by the image builders that run debootstrap or live-build (as
# root).  Those mount /proc, /sys and /dev/pts inside the tree they fill,
# and a build that is killed leaves them mounted in the cache directory.
#
# tree_release DIR: unmount whatever is mounted at or under DIR (deepest
#   first; lazily if busy) and remove DIR, never crossing into a mount.
# tree_sweep PREFIX: tree_release each PREFIX.PID whose build process is
#   gone (left by a build that was killed).
# tree_signals: make SIGINT, SIGTERM and SIGHUP end the script through its
#   EXIT trap, which sh skips when a signal kills it.

tree_release() {
	[ -e "$1" ] || return 0
	_d=$(cd "$1" && pwd -P) || return 1
	awk -v d="$_d" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
		while read -r _m; do umount "$_m" 2>/dev/null || umount -l "$_m"; done
	rm -rf --one-file-system "$1"
}

tree_sweep() {
	for _t in "$1".*; do
		[ -d "$_t" ] || continue
		_pid=${_t##*.}
		case $_pid in '' | *[!0-9]*) continue ;; esac
		kill -0 "$_pid" 2>/dev/null && continue
		echo "removing $_t, left by a build that was stopped" >&2
		tree_release "$_t"
		rm -f "$_t.log"
	done
}

tree_signals() {
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
}
