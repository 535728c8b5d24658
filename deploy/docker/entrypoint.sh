#!/bin/sh
# Container entrypoint: for every NAME_FILE=/run/secrets/... in the environment, export
# NAME with the file's content, then exec the command. Docker and Compose secrets are
# files under /run/secrets; the gateway reads vendor credentials (credential.env), sink
# tokens and PGPASSWORD from environment variables. Only files in the secrets folder
# (VENDORGATE_SECRETS_DIR, default /run/secrets) count: other *_FILE variables are left
# alone. A trailing newline in the file is dropped.
set -eu
secrets_dir=${VENDORGATE_SECRETS_DIR:-/run/secrets}
for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)_FILE=.*$/\1/p'); do
  file=$(printenv "${name}_FILE") || continue
  case "$file" in
    "$secrets_dir"/*) ;;
    *) continue ;;
  esac
  if printenv "$name" >/dev/null 2>&1; then
    echo "vendorgate-entrypoint: both $name and ${name}_FILE are set; set one" >&2
    exit 2
  fi
  if [ ! -r "$file" ]; then
    echo "vendorgate-entrypoint: ${name}_FILE=$file is not a readable file" >&2
    exit 2
  fi
  value=$(cat "$file")
  export "$name=$value"
  unset "${name}_FILE"
done
exec "$@"
