#!/bin/sh
# Installs the bpfnet CNI plugin as DIR/bpfnet (default /opt/cni/bin): a
# launcher with this checkout's and node's absolute paths baked in, so it works
# whatever PATH the runtime gives its plugins. Build first (make).
set -eu
dir=${1:-/opt/cni/bin}
root=$(cd "$(dirname "$0")/../.." && pwd)
node=$(command -v node) || { echo "node not found on PATH" >&2; exit 1; }
[ -f "$root/dist/src/cni/main.js" ] || { echo "$root/dist/src/cni/main.js is missing: run make first" >&2; exit 1; }
mkdir -p "$dir"
tmp="$dir/.bpfnet.$$"
cat >"$tmp" <<LAUNCHER
#!/bin/sh
# bpfnet CNI plugin (installed by $root/bin/cni/install.sh)
exec "$node" "$root/dist/src/cni/main.js" "\$@"
LAUNCHER
chmod 755 "$tmp"
mv -f "$tmp" "$dir/bpfnet"
echo "installed $dir/bpfnet -> $root/dist/src/cni/main.js"
