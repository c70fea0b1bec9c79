#!/usr/bin/env bash
# Builds the Debian package (scripts/package.sh) and checks it without installing it: its
# listing has the programs, the unit and its default file (a conffile); the unit passes
# `systemd-analyze verify` with nothing to say, against the package's own files; and the
# packaged programs run --help under their installed names. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() {
  echo "package_check: $*" >&2
  exit 1
}

deb=$(bash scripts/package.sh)
listing=$(dpkg -c "$deb")
for path in ./usr/bin/camstream-sender ./usr/bin/camstream-receiver \
  ./lib/systemd/system/camstream-sender.service ./etc/default/camstream-sender \
  ./usr/share/doc/camstream/copyright; do
  grep -q " $path\$" <<<"$listing" || fail "$deb does not hold $path:"$'\n'"$listing"
done
[[ $(dpkg-deb --info "$deb" conffiles) == /etc/default/camstream-sender ]] ||
  fail "/etc/default/camstream-sender is not the package's one conffile"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
# The targets the unit names come from this machine's systemd; its command from the package.
cp -rn /lib/systemd/system/. "$root/lib/systemd/system/"
# verify exits 0 on unknown keys and bad values, which it only prints: any output fails.
said=$(systemd-analyze verify --root="$root" camstream-sender.service 2>&1) ||
  fail "systemd-analyze verify failed: $said"
[[ -z $said ]] || fail "systemd-analyze verify: $said"

for program in camstream-sender camstream-receiver; do
  help=$("$root/usr/bin/$program" --help) || fail "$program --help failed"
  grep -q "^Usage: $program " <<<"$help" || fail "$program --help does not name it: $help"
done
echo "package_check: $deb: $(du -h "$deb" | cut -f1), its unit verified, its programs run" >&2
