# The desktop on a real (or emulated) screen: the live system has no
# display manager, so the autologin on the first console starts X there,
# and logging out of XFce comes back to that console.  Under umlk there is
# no screen (no DRM or framebuffer device): xnest-launch runs the session
# on its own window instead, and this does nothing.
if [ -z "${DISPLAY:-}" ] && [ "$(tty 2>/dev/null)" = /dev/tty1 ] &&
	{ [ -e /dev/dri/card0 ] || [ -e /dev/fb0 ]; } && command -v startx >/dev/null; then
	startx
fi
