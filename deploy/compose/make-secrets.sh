#!/bin/sh
# Makes the secrets compose.yaml uses, once, into DIR (default: the folder
# of this script): secrets/gossip.key (base64 of 32 random bytes, every
# collector's gossip key), secrets/admin.token and secrets/agent.token
# (Drover tokens: drover_ + 32 random bytes in base64url), secrets/tokens.yaml
# (their sha256, the collectors' auth.tokens_file) and .env (the ClickHouse
# password, read by `docker compose` for the ClickHouse server, the
# collectors' DSN and Grafana's data source). Existing files are kept, so a
# second run changes nothing; delete secrets/ and .env to start over (and the
# volumes: ClickHouse keeps the first password).
set -eu

dir=${1:-$(cd "$(dirname "$0")" && pwd)}
mkdir -p "$dir/secrets"
chmod 0700 "$dir/secrets"

random_b64() { head -c "$1" /dev/urandom | base64 | tr -d '\n'; }
new_token() { printf 'drover_%s\n' "$(random_b64 32 | tr '+/' '-_' | tr -d '=')"; }
sum() { tr -d '\n' <"$1" | sha256sum | cut -d' ' -f1; }

# The files are read inside the containers by uid 10001 (the images' user)
# through bind mounts, so they are world-readable; the folder above is not.
[ -s "$dir/secrets/gossip.key" ] || { random_b64 32 >"$dir/secrets/gossip.key"; echo >>"$dir/secrets/gossip.key"; }
[ -s "$dir/secrets/admin.token" ] || new_token >"$dir/secrets/admin.token"
[ -s "$dir/secrets/agent.token" ] || new_token >"$dir/secrets/agent.token"
chmod 0644 "$dir/secrets/gossip.key" "$dir/secrets/admin.token" "$dir/secrets/agent.token"

cat >"$dir/secrets/tokens.yaml" <<YAML
# auth.tokens_file of every collector (docs/security.md): hashes only.
- name: compose-admin
  role: admin
  sha256: $(sum "$dir/secrets/admin.token")
- name: compose-agent
  role: agent
  sha256: $(sum "$dir/secrets/agent.token")
YAML
chmod 0644 "$dir/secrets/tokens.yaml"

if [ ! -s "$dir/.env" ]; then
	printf 'CLICKHOUSE_PASSWORD=%s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/.env"
	chmod 0600 "$dir/.env"
fi
echo "secrets in $dir/secrets, the ClickHouse password in $dir/.env"
echo "droverctl: droverctl --collector http://127.0.0.1:7070 --token-file $dir/secrets/admin.token status"
