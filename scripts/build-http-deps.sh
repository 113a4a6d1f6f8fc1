#!/bin/sh
# build-http-deps.sh -- builds static libcurl (HTTP and HTTPS with OpenSSL and zlib, no other
# protocol or encoding) and static libmicrohttpd (no HTTPS) into PREFIX, from Debian's source
# packages of bookworm, bookworm-updates and bookworm-security, so Debian's security patches are
# in them. Debian's libcurl4 and libmicrohttpd12 map gnutls and about twenty libraries for
# protocols, encodings and an HTTPS server we never use: 3.7 MiB of a ten-agent `mindroom run`
# (bench/pipeline/README.md).
#
# apt itself fetches the sources, from a private state directory (no root, the system's apt
# configuration untouched): it checks the Sources indexes against the Debian archive keyring and
# each file against the index's hashes. A second run that finds the same versions (and this
# script unchanged) in PREFIX does nothing.
# Usage: scripts/build-http-deps.sh PREFIX      JOBS=n sets the build's parallelism.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 PREFIX" >&2; exit 2; }
# Absolute, as the build records it; made only once there is something to put in it.
case $1 in /*) prefix=$1 ;; *) prefix=$(pwd)/$1 ;; esac
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
# Source package names, not binary ones: apt-get source --only-source takes them as they are.
packages="curl libmicrohttpd"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
stamp=$prefix/http-deps.versions

for tool in apt-get dpkg-source dpkg-buildflags cmake make cc; do
    command -v "$tool" >/dev/null || {
        echo "build-http-deps: $tool is missing; install dpkg-dev, cmake and build-essential (make deps does)" >&2
        exit 1; }
done
[ -r "$keyring" ] || { echo "build-http-deps: no $keyring; install debian-archive-keyring" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mr-http-deps.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/sources.d" "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
cat >"$work/sources.d/debian-src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: $keyring

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: $keyring
EOF
set -- -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$work/sources.d" \
    -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o Debug::NoLocking=1
# As root apt would hand the download to the _apt user, who cannot write to our directory.
[ "$(id -u)" != 0 ] || set -- "$@" -o APT::Sandbox::User=root

if ! apt-get "$@" -qq update >"$work/update.log" 2>&1 || grep -q '^[WE]:' "$work/update.log"; then
    cat "$work/update.log" >&2
    if [ -f "$stamp" ]; then
        echo "build-http-deps: cannot reach Debian's source indexes (above); keeping what $prefix holds:" >&2
        cat "$stamp" >&2
        exit 0
    fi
    echo "build-http-deps: cannot fetch Debian's source indexes (above) from deb.debian.org; check the network or proxy and run again" >&2
    exit 1
fi

# The version apt would take, from the name of the .dsc it would fetch.
want="script $(sha256sum "$0" | cut -d' ' -f1)"
for p in $packages; do
    v=$(apt-get "$@" -qq source --only-source --print-uris "$p" | sed -n "s/^'[^']*' ${p}_\([^ ]*\)\.dsc .*/\1/p")
    [ -n "$v" ] || { echo "build-http-deps: Debian bookworm has no source package $p" >&2; exit 1; }
    want="$want
$p $v"
done
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "build-http-deps: $prefix already holds" $(echo "$want" | sed 1d)
    exit 0
fi
echo "build-http-deps: building into $prefix:" $(echo "$want" | sed 1d)

(cd "$work/src" && apt-get "$@" -qq source --only-source $packages >"$work/source.log" 2>&1) || {
    cat "$work/source.log" >&2
    echo "build-http-deps: apt-get source $packages failed (above): the download or its hash check" >&2
    exit 1; }

rm -rf "$stamp" "$prefix/bin" "$prefix/lib" "$prefix/include" "$prefix/share"
mkdir -p "$prefix"
# Debian's hardening flags, as its packages are built (libmicrohttpd's rules ask for all of them).
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CFLAGS=$(dpkg-buildflags --get CFLAGS)
CPPFLAGS=$(dpkg-buildflags --get CPPFLAGS)
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
export CFLAGS CPPFLAGS LDFLAGS

# curl's CMake build reads none of the autotools files Debian's last two patches (90_gnutls,
# 99_nss: the other TLS flavours' library names) change. The CA paths are Debian's (debian/rules).
curl_src=$(echo "$work"/src/curl-*/)
cmake -S "$curl_src" -B "$work/curl-build" -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_SHARED_LIBS=OFF \
    -DBUILD_CURL_EXE=OFF -DBUILD_TESTING=OFF -DENABLE_MANUAL=OFF -DHTTP_ONLY=ON \
    -DCURL_USE_OPENSSL=ON -DCURL_ZLIB=ON -DCURL_BROTLI=OFF -DCURL_ZSTD=OFF -DUSE_NGHTTP2=OFF \
    -DCURL_USE_LIBPSL=OFF -DCURL_USE_LIBSSH2=OFF -DCURL_USE_LIBSSH=OFF -DUSE_LIBIDN2=OFF \
    -DCURL_DISABLE_LDAP=ON -DCURL_DISABLE_LDAPS=ON -DCURL_USE_GSSAPI=OFF -DUSE_LIBRTMP=OFF \
    -DCURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt -DCURL_CA_PATH=/etc/ssl/certs \
    >"$work/curl.log" 2>&1 &&
cmake --build "$work/curl-build" -j "$jobs" >>"$work/curl.log" 2>&1 &&
cmake --install "$work/curl-build" >>"$work/curl.log" 2>&1 || {
    tail -n 40 "$work/curl.log" >&2
    echo "build-http-deps: building libcurl from $curl_src failed (above)" >&2
    exit 1; }

mhd_src=$(echo "$work"/src/libmicrohttpd-*/)
mkdir "$work/mhd-build"
(cd "$work/mhd-build" && "$mhd_src/configure" --prefix="$prefix" --libdir="$prefix/lib" \
    --disable-shared --enable-static --with-pic --disable-https --disable-curl --disable-doc \
    --disable-examples --disable-nls --disable-dependency-tracking &&
 make -j "$jobs" -C src/microhttpd && make -C src/microhttpd install && make -C src/include install) \
    >"$work/mhd.log" 2>&1 || {
    tail -n 40 "$work/mhd.log" >&2
    echo "build-http-deps: building libmicrohttpd from $mhd_src failed (above)" >&2
    exit 1; }
# libmicrohttpd.pc is generated in the top of the build.
install -m 0644 "$work/mhd-build/libmicrohttpd.pc" "$prefix/lib/pkgconfig/"
rm -f "$prefix"/lib/*.la

echo "$want" >"$stamp"
echo "build-http-deps: done:" $(echo "$want" | sed 1d)
