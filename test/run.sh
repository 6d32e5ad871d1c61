#!/usr/bin/env bash
# Runs the whole mailvaultd test suite on a fresh Debian machine with Go:
# installs what the real-component tests need (Postfix, swaks, gnupg,
# smtp-source/smtp-sink, PostgreSQL's server binaries, Chromium,
# systemd-analyze; MinIO built once into the git-ignored .tools/), checks
# formatting and vet, then runs every test. internal/pgtest runs its own
# PostgreSQL servers from /usr/lib/postgresql/*/bin; the package's system
# cluster is never used.
#
#   test/run.sh                 # everything
#   test/run.sh ./smtpd/ ...    # only these packages
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

missing=()
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || missing+=(postfix)
[ -x /usr/sbin/smtp-source ] || missing+=(postfix)
command -v swaks >/dev/null 2>&1 || missing+=(swaks)
command -v gpg >/dev/null 2>&1 || missing+=(gnupg)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
	echo "test/run.sh: installing ${missing[*]}"
	printf '%s\n' 'postfix postfix/main_mailer_type select No configuration' \
		'postfix postfix/mailname string example.test' | $sudo debconf-set-selections
	$sudo apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi

minio_version=v0.0.0-20260212201848-7aac2a2c5b7c
if [ ! -x "$root/.tools/bin/minio" ] || [ "$(cat "$root/.tools/minio.version" 2>/dev/null)" != "$minio_version" ]; then
	echo "test/run.sh: building MinIO $minio_version into .tools/bin (about 3 minutes, once)"
	GOBIN="$root/.tools/bin" go install "github.com/minio/minio@$minio_version"
	echo "$minio_version" > "$root/.tools/minio.version"
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...

pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then pkgs=(./...); fi
# The race detector on everything; -p 2 matches the 2-core machines.
go test -race -p 2 -timeout 40m "${pkgs[@]}"
