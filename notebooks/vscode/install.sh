#!/bin/sh
# code-server for VS Code notebooks on the local backend, as package-lock.json pins it, installed into the
# portal's virtual environment: VENV/lib/code-server, linked as VENV/bin/code-server. A task's sandbox sees
# that environment (and the system's folders: node), not the repository.
#
#   sh notebooks/vscode/install.sh [VENV]        (VENV: .venv by default)
#
# Needs node 20 and npm, and what code-server's install builds VS Code's native modules with: python3, make,
# g++, the Kerberos headers (Debian: libkrb5-dev). ripgrep (Debian: ripgrep) is taken from PATH where it is
# there; otherwise VS Code's ripgrep package downloads its own from GitHub. Nothing is done when the same
# lock file is already installed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
venv=$(cd "${1:-.venv}" && pwd)
dest="$venv/lib/code-server"
link="$venv/bin/code-server"

# The @vscode/ripgrep release that code-server 4.100.3's VS Code pins, and the ripgrep build it fetches.
ripgrep_package=1.15.11
ripgrep_asset=ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz

for program in node npm; do
  command -v "$program" >/dev/null 2>&1 || { echo "code-server: $program is not installed" >&2; exit 1; }
done
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" != 20 ]; then
  echo "code-server 4.100.3 runs on node 20; this node is $(node -v)" >&2
  exit 1
fi

if cmp -s "$here/package-lock.json" "$dest/installed-lock.json" && [ -x "$dest/node_modules/.bin/code-server" ]; then
  ln -sfn ../lib/code-server/node_modules/.bin/code-server "$link"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
rm -rf "$dest"
mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$dest/"

# VS Code's ripgrep package takes a download it finds in its cache folder (under TMPDIR) as its own.
if rg=$(command -v rg 2>/dev/null); then
  mkdir -p "$work/rg" "$work/vscode-ripgrep-cache-$ripgrep_package"
  cp "$rg" "$work/rg/rg"
  tar czf "$work/vscode-ripgrep-cache-$ripgrep_package/$ripgrep_asset" -C "$work/rg" rg
fi
# The native modules build against the installed node's headers, not ones downloaded from nodejs.org.
nodedir=$(dirname "$(dirname "$(command -v node)")")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$nodedir/include/node/node.h" ]; then
  npm_config_nodedir=$nodedir
  export npm_config_nodedir
fi

# code-server's postinstall installs VS Code's own modules with npm: as root it asks for unsafe-perm, and
# node-pty's runs node-gyp through npx, which must not stop to ask.
(
  cd "$dest"
  TMPDIR="$work" npm_config_unsafe_perm=true npm_config_yes=true \
    npm ci --no-audit --no-fund --loglevel=error
)
cp "$here/package-lock.json" "$dest/installed-lock.json"
mkdir -p "$venv/bin"
ln -sfn ../lib/code-server/node_modules/.bin/code-server "$link"
"$link" --version >/dev/null
