# Sourced by scripts that fetch Debian packages (build-codecs.sh, make-sysroot.sh,
# oldroot-check.sh): sets $debian_mirror to the mirror the system's apt uses (deb822 or one-line
# sources), else Debian's default; no trailing slash.
debian_mirror=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
  2>/dev/null | head -1 | tr -d ' ' || true)
debian_mirror=${debian_mirror:-http://deb.debian.org/debian}
debian_mirror=${debian_mirror%/}
