#!/usr/bin/env bash
# Makes a glibc 2.31 sysroot (Debian bullseye's libc6, libc6-dev, libcrypt and kernel headers) in
# build-sysroot/root (or $CARZERO_SYSROOT_DIR/root) for linking the shipped binaries so that they
# load on glibc 2.31 and newer (Ubuntu 20.04/22.04, Debian 11/12, RHEL 9). CMakeLists.txt uses it
# when CARZERO_SYSROOT names it: the host's g++ compiles against bullseye's C headers and links
# against bullseye's libc, while libstdc++ and libgcc (static) stay the host compiler's; the few
# symbols those need from a newer glibc get local stand-ins (native/src/compat/glibc_compat.cpp).
# docs/ARCHITECTURE.md ("Prebuilt binaries and glibc") explains the choice.
#
# Needs apt (a private list; the system's apt configuration is not touched) and dpkg-deb. Takes a few
# seconds; a finished root is reused. Prints the sysroot path on its last line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${CARZERO_SYSROOT_DIR:-$root/build-sysroot}
sysroot=$out/root
pkgs=(libc6 libc6-dev libcrypt1 libcrypt-dev linux-libc-dev)
stamp="$sysroot/.made-bullseye-${pkgs[*]// /-}"
stamp=${stamp// /_}
if [ -f "$stamp" ]; then
  echo "$sysroot"
  exit 0
fi
rm -rf "$out"
mkdir -p "$out/apt/lists/partial" "$out/deb" "$sysroot"
: > "$out/apt/status"
. "$root/scripts/debian-mirror.sh"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${debian_mirror} bullseye main" \
  > "$out/apt/sources.list"
# An empty dpkg status: apt picks bullseye's versions, not the host's installed ones.
apt_opts=(-o "Dir::Etc::SourceList=$out/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$out/apt/lists" -o "Dir::State::status=$out/apt/status"
  -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
  -o "Dir::Cache::archives=$out/deb" -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q)
apt-get "${apt_opts[@]}" update >/dev/null
(cd "$out/deb" && apt-get "${apt_opts[@]}" download "${pkgs[@]}" >/dev/null) || {
  echo "make-sysroot: cannot download ${pkgs[*]} from bullseye" >&2; exit 1; }
for d in "$out"/deb/*.deb; do dpkg-deb -x "$d" "$sysroot"; done
# Absolute symlinks inside the root (lib64/ld-linux-x86-64.so.2 -> /lib/...) would point into the
# host; make them relative to the root.
find "$sysroot" -type l | while read -r l; do
  t=$(readlink "$l")
  case "$t" in /*) ln -sfr "$sysroot$t" "$l" ;; esac
done
# With --sysroot, g++ looks for its own C++ headers under the root too: point it at the host's.
gxx=$(g++ -dumpversion | cut -d. -f1)
mkdir -p "$sysroot/usr/include/c++" "$sysroot/usr/include/x86_64-linux-gnu/c++"
ln -sfn "/usr/include/c++/$gxx" "$sysroot/usr/include/c++/$gxx"
ln -sfn "/usr/include/x86_64-linux-gnu/c++/$gxx" "$sysroot/usr/include/x86_64-linux-gnu/c++/$gxx"
test -f "$sysroot/usr/lib/x86_64-linux-gnu/libc_nonshared.a"
grep -q '2\.31' <(ls "$sysroot/lib/x86_64-linux-gnu/")
touch "$stamp"
echo "$sysroot"
