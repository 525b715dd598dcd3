#!/usr/bin/env bash
# Builds the image codecs that the native image feed links statically (zlib, libpng,
# libjpeg-turbo with its SIMD, OpenJPEG, libdeflate) as position-independent static archives, from Debian
# bookworm's source packages (upstream source + Debian's patches, as of bookworm's point releases), into
# build-codecs/prefix (or $CARZERO_CODECS_DIR/prefix). cmake/codecs.cmake links them from there.
#
# Why not Debian's own -dev archives: they are compiled for position-independent *executables*
# (their libc data references, stderr/stdout, are PC-relative), so they link into test programs
# but not into a shared object such as carzero.node or libcarzero.so.
#
# Needs: apt (source packages through a private deb-src list; the system's apt configuration is not
# changed), dpkg-source, cmake, a C compiler, make, nasm (libjpeg-turbo's SIMD). About 2 minutes on
# 2 cores; a finished prefix is kept and reused (delete build-codecs/ to rebuild). Not part of
# `npm install`: a source build without this prefix decodes images in JavaScript instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${CARZERO_CODECS_DIR:-$root/build-codecs}
prefix=$out/prefix
# Source package versions (Debian bookworm); the stamp names them so a change rebuilds.
pkgs=(zlib libpng1.6 libjpeg-turbo openjpeg2 libdeflate)
stamp="$prefix/.built-${pkgs[*]// /-}"
stamp=${stamp// /_}
if [ -f "$stamp" ]; then
  echo "build-codecs: $prefix is up to date"
  exit 0
fi
jobs=$(nproc 2>/dev/null || echo 2)
src=$out/src
rm -rf "$src" "$prefix"
mkdir -p "$src" "$prefix" "$out/apt/lists/partial"

# ---- the source packages, through a private deb-src list ----
# The bookworm mirror the system's apt uses.
. "$root/scripts/debian-mirror.sh"
cat > "$out/apt/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${debian_mirror} bookworm main
EOF
apt_opts=(-o "Dir::Etc::SourceList=$out/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$out/apt/lists" -o Debug::NoLocking=1 -q)
apt-get "${apt_opts[@]}" update >/dev/null
cd "$src"
for p in "${pkgs[@]}"; do apt-get "${apt_opts[@]}" source --download-only "$p" >/dev/null 2>&1 || {
  echo "build-codecs: cannot download the source package $p" >&2; exit 1; }; done
for d in *.dsc; do dpkg-source --no-check -x "$d" >/dev/null; done

export CFLAGS="-O2 -fPIC -fno-plt"
cm=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_INSTALL_PREFIX="$prefix"
  -DCMAKE_INSTALL_LIBDIR="$prefix/lib" -DCMAKE_INSTALL_INCLUDEDIR="$prefix/include" -DCMAKE_C_FLAGS="$CFLAGS")

# ---- zlib ----
(cd zlib-*/ && ./configure --static --prefix="$prefix" >/dev/null && make -j"$jobs" libz.a >/dev/null \
  && make install >/dev/null)

# ---- libpng (its CMake finds our zlib) ----
(cd libpng1.6-*/ 2>/dev/null || cd libpng-*/
 cmake -S . -B build "${cm[@]}" -DPNG_SHARED=OFF -DPNG_STATIC=ON -DPNG_TESTS=OFF -DPNG_EXECUTABLES=OFF \
   -DZLIB_INCLUDE_DIR="$prefix/include" -DZLIB_LIBRARY="$prefix/lib/libz.a" >/dev/null
 cmake --build build -j"$jobs" >/dev/null && cmake --install build >/dev/null)

# ---- libjpeg-turbo (8-bit; SIMD with nasm) ----
(cd libjpeg-turbo-*/
 cmake -S . -B build "${cm[@]}" -DENABLE_SHARED=OFF -DENABLE_STATIC=ON -DWITH_TURBOJPEG=OFF \
   -DWITH_JPEG8=OFF -DREQUIRE_SIMD=ON >/dev/null
 cmake --build build -j"$jobs" >/dev/null && cmake --install build >/dev/null)

# ---- OpenJPEG (the library only) ----
(cd openjpeg2-*/ 2>/dev/null || cd openjpeg-*/
 cmake -S . -B build "${cm[@]}" -DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON -DBUILD_CODEC=OFF \
   -DBUILD_TESTING=OFF -DBUILD_DOC=OFF >/dev/null
 cmake --build build -j"$jobs" >/dev/null && cmake --install build >/dev/null)

# ---- libdeflate (the library only: the PNG fast path inflates with it). 1.14 (bookworm) builds
# with a plain Makefile (CMake arrived in 1.15); use CMake when the source has it. ----
(cd libdeflate-*/
 if [ -f CMakeLists.txt ]; then
   cmake -S . -B build "${cm[@]}" -DLIBDEFLATE_BUILD_SHARED_LIB=OFF -DLIBDEFLATE_BUILD_STATIC_LIB=ON \
     -DLIBDEFLATE_BUILD_GZIP=OFF -DLIBDEFLATE_BUILD_TESTS=OFF >/dev/null
   cmake --build build -j"$jobs" >/dev/null && cmake --install build >/dev/null
 else
   make -j"$jobs" libdeflate.a CFLAGS="$CFLAGS" >/dev/null
   install -m 644 libdeflate.a "$prefix/lib/" && install -m 644 libdeflate.h "$prefix/include/"
 fi)

# Every archive must be free of PC-relative references to libc data (the reason for this script).
for a in "$prefix"/lib/libz.a "$prefix"/lib/libpng16.a "$prefix"/lib/libjpeg.a "$prefix"/lib/libopenjp2.a \
  "$prefix"/lib/libdeflate.a; do
  test -f "$a" || { echo "build-codecs: $a was not built" >&2; exit 1; }
  if readelf -rW "$a" | grep -E 'R_X86_64_PC32 +[0-9a-f]+ +(stderr|stdout|stdin)' >/dev/null; then
    echo "build-codecs: $a is not position-independent" >&2; exit 1
  fi
done
rm -rf "$src"
touch "$stamp"
echo "build-codecs: built $(cd "$prefix/lib" && ls lib*.a | tr '\n' ' ')in $prefix"
