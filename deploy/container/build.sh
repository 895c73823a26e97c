#!/usr/bin/env bash
# Builds the container image `tollgate:latest` (or $TOLLGATE_IMAGE) with no registry: a release build with the static
# Swift standard library, a root filesystem holding only the binary, its resource bundle (the SQL migrations), the
# libraries `ldd` lists, CA certificates, the price catalogs and a non-root user, then `podman build` of Containerfile
# FROM scratch. Set SKIP_SWIFT_BUILD=1 to reuse the last release build. Prints the image size last.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE="${TOLLGATE_IMAGE:-tollgate:latest}"
PODMAN=(podman --runtime "${PODMAN_RUNTIME:-runc}")
# TOLLGATE_SCRATCH_PATH: a build directory of its own (e.g. .build-release) leaves .build free for debug builds meanwhile.
SCRATCH="${TOLLGATE_SCRATCH_PATH:-.build}"
SWIFT_BUILD=(swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH")

# TOLLGATE_BIN_DIR: package the binary already in that directory (no build; e.g. .build/debug for a quick try).
if [ -n "${TOLLGATE_BIN_DIR:-}" ]; then
    BIN_DIR="$TOLLGATE_BIN_DIR"
else
    if [ "${SKIP_SWIFT_BUILD:-0}" != 1 ] && ! "${SWIFT_BUILD[@]}" --product tollgate; then
        # SwiftPM 6.3.1 can fail a repeated release build in one scratch directory with "unknown build description":
        # dropping the cached descriptions (not the built objects) and building again mends it.
        rm -f "$SCRATCH/release.yaml" "$SCRATCH/release/description.json"
        "${SWIFT_BUILD[@]}" --product tollgate
    fi
    BIN_DIR="$SCRATCH/release"
fi
[ -x "$BIN_DIR/tollgate" ] || { echo "no release binary in $BIN_DIR"; exit 1; }
BUNDLE="$(ls -d "$BIN_DIR"/*_TollgateStore.resources 2>/dev/null | head -1)"
if [ -z "$BUNDLE" ] || [ ! -d "$BUNDLE/sql" ]; then
    echo "no TollgateStore resource bundle with sql/ beside the binary in $BIN_DIR"; exit 1
fi

CONTEXT="$(mktemp -d /tmp/tollgate-image.XXXXXX)"
trap 'rm -rf "$CONTEXT"' EXIT
ROOTFS="$CONTEXT/rootfs"
mkdir -p "$ROOTFS"/{usr/local/bin,etc/ssl/certs,var/lib,tmp}
chmod 1777 "$ROOTFS/tmp"

# The binary and, beside it, the resource bundle Bundle.module finds the migrations in.
install -m 755 "$BIN_DIR/tollgate" "$ROOTFS/usr/local/bin/tollgate"
# Without its symbol table and debug info the release binary is about half its size (189 MB to 91 MB here). Swift's
# metadata lives in sections of its own and dlsym uses .dynsym, both kept; crash backtraces show addresses only.
# TOLLGATE_STRIP=0 keeps them.
if [ "${TOLLGATE_STRIP:-1}" = 1 ] && command -v strip >/dev/null; then strip "$ROOTFS/usr/local/bin/tollgate"; fi
cp -a "$BUNDLE" "$ROOTFS/usr/local/bin/"
# The tokenizer's vocabularies (o200k_base, cl100k_base) ship the same way.
TOKENIZER_BUNDLE="$(ls -d "$BIN_DIR"/*_TollgateTokenizer.resources 2>/dev/null | head -1)"
[ -n "$TOKENIZER_BUNDLE" ] || { echo "no TollgateTokenizer resource bundle beside the binary in $BIN_DIR"; exit 1; }
cp -a "$TOKENIZER_BUNDLE" "$ROOTFS/usr/local/bin/"


# The shared libraries the binary links (glibc-level only with --static-swift-stdlib), at the paths ldd resolved,
# and the dynamic loader.
ldd "$BIN_DIR/tollgate" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u | while read -r lib; do
    mkdir -p "$ROOTFS$(dirname "$lib")"
    cp -L "$lib" "$ROOTFS$lib"
done
if ldd "$BIN_DIR/tollgate" | grep -q "not found"; then ldd "$BIN_DIR/tollgate"; echo "a library is missing"; exit 1; fi
[ -e "$ROOTFS/lib64/ld-linux-x86-64.so.2" ] || [ -e "$ROOTFS/lib/ld-linux-aarch64.so.1" ] || { echo "the dynamic loader was not copied"; exit 1; }

cp -L /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
cat > "$ROOTFS/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
tollgate:x:10001:10001:Tollgate:/var/lib/tollgate:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat > "$ROOTFS/etc/group" <<'GROUP'
root:x:0:
tollgate:x:10001:
nogroup:x:65534:
GROUP
printf 'hosts: files dns\n' > "$ROOTFS/etc/nsswitch.conf"
mkdir -m 750 "$CONTEXT/data"  # /var/lib/tollgate, copied with --chown by the Containerfile

cp Containerfile "$CONTEXT/Containerfile"
"${PODMAN[@]}" build --quiet --format oci -t "$IMAGE" -f "$CONTEXT/Containerfile" "$CONTEXT" >/dev/null
SIZE=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $SIZE bytes ($((SIZE / 1024 / 1024)) MiB)"
