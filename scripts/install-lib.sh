#!/usr/bin/env bash
# Installs midge's C library under PREFIX: include/midge.h, lib/libmidge.a,
# lib/libmidge.so.VERSION with its SONAME link (libmidge.so.0.MINOR for
# 0.x) and the libmidge.so development link, and lib/pkgconfig/midge.pc.
#
#   cargo build --release && scripts/install-lib.sh /usr/local
#   cc app.c $(pkg-config --cflags --libs midge)          # shared
#   cc app.c /usr/local/lib/libmidge.a $(pkg-config --static --libs-only-l midge)
#
# BUILD_DIR: where libmidge.a and libmidge.so are (default target/release).
set -euo pipefail

prefix="${1:?usage: scripts/install-lib.sh PREFIX}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/target/release}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"
soname="$(readelf -d "$build/libmidge.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
if [ -z "$version" ] || [ -z "$soname" ]; then
    echo "no version in Cargo.toml or no SONAME in $build/libmidge.so" >&2
    exit 1
fi

install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 644 "$root/include/midge.h" "$prefix/include/midge.h"
install -m 644 "$build/libmidge.a" "$prefix/lib/libmidge.a"
install -m 755 "$build/libmidge.so" "$prefix/lib/libmidge.so.$version"
ln -sfn "libmidge.so.$version" "$prefix/lib/$soname"
ln -sfn "$soname" "$prefix/lib/libmidge.so"
cat > "$prefix/lib/pkgconfig/midge.pc" <<EOF
prefix=$prefix
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: midge
Description: A small, fast MQTT broker to embed in a program's own event loop
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lmidge
Libs.private: -lpthread -ldl -lm
EOF
echo "installed midge $version ($soname) under $prefix"
