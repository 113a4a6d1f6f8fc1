#!/bin/sh
# build.sh -- builds the images in order: the shared build and runtime stages, then one image per
# mindroom*.Dockerfile, each tagged with the project's version (the charts' default tag).
# Usage: docker/build.sh [VERSION]     DOCKER=... replaces the docker command (e.g. "echo docker").
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
version=${1:-$(sed -n 's/^project(mindroom VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")}
docker=${DOCKER:-docker}
[ -n "$version" ] || { echo "build.sh: no version given and none in $root/CMakeLists.txt" >&2; exit 2; }

# Only the build stage needs the source; the others get docker/ as a small context.
$docker build -f "$here/build.Dockerfile" -t "mindroom-build:$version" "$root"
$docker build -f "$here/runtime.Dockerfile" -t "mindroom-runtime:$version" "$here"
for f in "$here"/mindroom*.Dockerfile; do
    name=$(basename "$f" .Dockerfile)
    $docker build --build-arg "VERSION=$version" -f "$f" -t "$name:$version" "$here"
done
