#!/bin/sh
# make-tools.sh DEST INETD [PLACE]: the debug toolbox's tools folder, made from this (Debian) system's files.
#
# DEST gets what a pod's init container copies to PLACE (default /easyai/tools, where every task sees it):
#   busybox          Debian's busybox-static, and bin/<applet> -> ../busybox for each of its applets
#   easyai-inetd     INETD, the static helper that gives Dropbear a socket (easyai-inetd.c)
#   dropbear         runs lib/dropbear with this folder's own loader and libraries, libnss_wrapper preloaded
#   dropbearkey      the same for lib/dropbearkey
#   lib/             Dropbear's binaries, every shared library they and libnss_wrapper need, and the loader
# The toolbox's scripts (clusters/backends/contract/toolbox.py) are written beside them by write-scripts.py.
# Nothing here needs the image a task runs: the loader and libraries travel with Dropbear.
set -eu
dest=${1:?usage: make-tools.sh DEST INETD [PLACE]}
inetd=${2:?usage: make-tools.sh DEST INETD [PLACE]}
place=${3:-/easyai/tools}
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

find_one() {  # the first of these that exists
    for candidate in "$@"; do
        if [ -e "$candidate" ]; then echo "$candidate"; return 0; fi
    done
    echo "make-tools.sh: none of $* is here" >&2
    return 1
}

busybox=$(find_one /bin/busybox /usr/bin/busybox)
dropbear=$(find_one /usr/sbin/dropbear /sbin/dropbear)
dropbearkey=$(find_one /usr/bin/dropbearkey /bin/dropbearkey)
nss=$(find_one /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so /usr/lib64/libnss_wrapper.so)

mkdir -p "$dest/bin" "$dest/lib"
cp -L "$busybox" "$dest/busybox"
"$dest/busybox" --list | while read -r applet; do
    case "$applet" in */*|"") continue ;; esac
    ln -sfn ../busybox "$dest/bin/$applet"
done
cp -L "$inetd" "$dest/easyai-inetd"
cp -L "$dropbear" "$dest/lib/dropbear"
cp -L "$dropbearkey" "$dest/lib/dropbearkey"
cp -L "$nss" "$dest/lib/libnss_wrapper.so"

# Every library the three load, by the name they ask for, and the loader (the interpreter ldd names last).
loader=""
for binary in "$dropbear" "$dropbearkey" "$nss"; do
    ldd "$binary" | while read -r name arrow path _; do
        [ "$arrow" = "=>" ] || continue
        if [ -z "$path" ] || [ "$path" = "not" ]; then
            echo "make-tools.sh: $binary needs $name, which is not installed" >&2
            exit 1
        fi
        cp -L "$path" "$dest/lib/$name"
    done
    found=$(ldd "$binary" | awk '$1 ~ /^\/.*ld-linux/ {print $1}')
    [ -n "$found" ] && loader=$found
done
[ -n "$loader" ] || { echo "make-tools.sh: no dynamic loader found for $dropbear" >&2; exit 1; }
loader_name=${loader##*/}
cp -L "$loader" "$dest/lib/$loader_name"

# The two commands, with the folder's own loader: they run whatever the image's C library (or none at all).
# busybox runs them, so that an image without /bin/sh can too.
cat >"$dest/dropbear" <<SCRIPT
#!$place/busybox sh
exec "$place/lib/$loader_name" --library-path "$place/lib" --preload "$place/lib/libnss_wrapper.so" "$place/lib/dropbear" "\$@"
SCRIPT
cat >"$dest/dropbearkey" <<SCRIPT
#!$place/busybox sh
exec "$place/lib/$loader_name" --library-path "$place/lib" "$place/lib/dropbearkey" "\$@"
SCRIPT
chmod 0755 "$dest" "$dest/bin" "$dest/lib" "$dest/busybox" "$dest/easyai-inetd" "$dest/dropbear" "$dest/dropbearkey" \
    "$dest/lib/dropbear" "$dest/lib/dropbearkey"
find "$dest/lib" -name '*.so*' -exec chmod 0755 {} +
