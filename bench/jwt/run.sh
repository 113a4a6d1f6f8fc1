#!/bin/sh
# run.sh -- JWT verifications/s (RS256, ES256) beside `openssl speed` verify/s on the same machine.
# Usage: bench/jwt/run.sh [SECONDS]   (BUILD=dir to reuse a build tree; default build-bench)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
bench_release_tree bench_jwt
secs=${1:-2}

bench_tmp jwt
"$build/bench/jwt/bench_jwt" "$secs" >"$tmp/jwt.csv"
openssl speed -seconds "$secs" rsa2048 ecdsap256 2>/dev/null >"$tmp/speed.txt"
# The last column of these lines is verify/s.
rsa=$(awk '/^rsa 2048 bits/ { print $NF }' "$tmp/speed.txt")
ec=$(awk '/ecdsa \(nistp256\)/ { print $NF }' "$tmp/speed.txt")

echo "verifications per second of CPU time, one thread, ${secs} s each"
printf '%-6s %14s %14s %14s %10s\n' alg openssl-speed libjwt-decode mr_jwt_verify vs-openssl
for alg in RS256 ES256; do
    base=$rsa
    [ "$alg" = ES256 ] && base=$ec
    ours=$(awk -F, -v a="$alg" '$1 == a { print $2 }' "$tmp/jwt.csv")
    bare=$(awk -F, -v a="$alg" '$1 == a { print $3 }' "$tmp/jwt.csv")
    printf '%-6s %14.0f %14.0f %14.0f %10s\n' "$alg" "$base" "$bare" "$ours" "$(ratio "$ours" "$base")"
done
echo "(openssl-speed: raw signature verify; libjwt-decode: jwt_decode with the PEM key, which it parses"
echo " on every call, as mr_jwt_verify did before; mr_jwt_verify: the whole check, no token cache:"
echo " base64url, header and claims JSON, key lookup, the digest and EVP_PKEY_verify on the thread's copy of"
echo " the context prepared at fetch time; all three divide by CPU time, as openssl speed does without -elapsed)"
