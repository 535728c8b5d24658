#!/bin/sh
# Create the secret files deploy/compose.yaml mounts, in deploy/compose/secrets/
# (git-ignored). Never overwrites: a new keys.json would orphan every token and
# the audit log's keyed head. Vendor keys are left empty for you to fill in; the
# gateway refuses to start while one is empty.
set -eu
dir=${1:-"$(dirname "$0")/secrets"}
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
new() {  # new NAME CONTENT: write the file unless it exists
  if [ -e "$dir/$1" ]; then echo "kept    $dir/$1"; return; fi
  printf '%s' "$2" > "$dir/$1"
  echo "created $dir/$1"
}
key=$(head -c 32 /dev/urandom | base64 | tr -d '\n')   # a 256-bit master key
new keys.json "{\"current\": \"k1\", \"keys\": {\"k1\": \"$key\"}}"
# Caller keys (auth.keys_file): salted hashes, no caller yet. Add callers with
#   vendorgate callers add NAME --config deploy/compose/vendorgate.yaml --keys-file "$dir/callers.yaml"
new callers.yaml "callers: {}
"
new postgres_password "$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')"
new openai_api_key ""
new labeler_api_key ""
# The files are bind-mounted into containers that run as other users (10001 for the
# gateway, 999 for postgres): readable inside, protected on the host by the 0700 folder.
chmod 0644 "$dir"/*
echo "fill in $dir/openai_api_key and $dir/labeler_api_key, and back up $dir/keys.json"
echo "add callers: vendorgate callers add NAME --config deploy/compose/vendorgate.yaml --keys-file $dir/callers.yaml"
