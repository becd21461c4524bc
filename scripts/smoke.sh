#!/usr/bin/env bash
# Release smoke test: runs a securechat binary the way a user would, in a throwaway home.
#
#   scripts/smoke.sh BINARY VERSION
#
# Checks that `BINARY --version` prints "securechat VERSION"; that `keygen` makes an Ed25519 and an
# RSA-PSS identity (the private key mode 0600 on Linux); and that a loopback `listen --pipe` /
# `dial --pipe` moves 1 MiB of random bytes each way intact, with the dialer pinning the
# listener's fingerprint and both sides showing the same verification code. The release workflow
# runs it on the Linux x86_64 archive before publishing; tests/release_test.ts runs it on main.ts.
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 BINARY VERSION" >&2
  exit 2
fi
bin="$1"
version="$2"
work="$(mktemp -d)"
listener_pid=""
cleanup() {
  if [ -n "$listener_pid" ]; then kill "$listener_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { echo "smoke: $*" >&2; }
fail() {
  echo "smoke: FAILED: $*" >&2
  exit 1
}
# A hung step fails instead of holding the job until its timeout.
limited() {
  if command -v timeout >/dev/null 2>&1; then timeout 120 "$@"; else "$@"; fi
}

# --version
out="$(limited "$bin" --version)" || fail "--version exited non-zero"
[ "$out" = "securechat $version" ] || fail "--version printed \"$out\", expected \"securechat $version\""
say "ok: --version prints \"$out\""

# keygen: an Ed25519 listener and an RSA-PSS dialer, no passphrase.
listener_line="$(SECURECHAT_HOME="$work/listener" limited "$bin" keygen --type ed25519 \
  --comment smoke-listener --no-passphrase 2>"$work/keygen.err")" ||
  fail "keygen (ed25519) failed: $(cat "$work/keygen.err")"
SECURECHAT_HOME="$work/dialer" limited "$bin" keygen --comment smoke-dialer --no-passphrase \
  >/dev/null 2>"$work/keygen.err" || fail "keygen (rsa-pss) failed: $(cat "$work/keygen.err")"
listener_fp="${listener_line%% *}"
case "$listener_fp" in
  SHA256:*) ;;
  *) fail "keygen printed \"$listener_line\", expected \"SHA256:... smoke-listener\"" ;;
esac
for f in "$work/listener/id" "$work/listener/id.pub" "$work/dialer/id" "$work/dialer/id.pub"; do
  [ -s "$f" ] || fail "keygen did not write $f"
done
if [ "$(uname -s)" = Linux ]; then
  mode="$(stat -c %a "$work/listener/id")"
  [ "$mode" = 600 ] || fail "private key mode is $mode, expected 600"
fi
[ "$(SECURECHAT_HOME="$work/listener" limited "$bin" fingerprint)" = "$listener_line" ] ||
  fail "fingerprint does not print what keygen printed"
say "ok: keygen wrote both identities; fingerprint $listener_fp"

# A loopback pipe, both directions at once.
head -c 1048576 /dev/urandom >"$work/to-dialer"
head -c 1048576 /dev/urandom >"$work/to-listener"
# Made before the listener starts: the loop below may read it before the listener's shell opens
# it, and a missing file would end this script (set -e, pipefail).
: >"$work/listener.err"
SECURECHAT_HOME="$work/listener" limited "$bin" listen --pipe --port 0 \
  <"$work/to-dialer" >"$work/listener.out" 2>"$work/listener.err" &
listener_pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -nE 's/.*listening on 127\.0\.0\.1:([0-9]+) .*/\1/p' "$work/listener.err" | head -n 1)"
  [ -n "$port" ] && break
  kill -0 "$listener_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || fail "the listener did not start: $(cat "$work/listener.err")"
SECURECHAT_HOME="$work/dialer" limited "$bin" dial --pipe "127.0.0.1:$port" --expect "$listener_fp" \
  <"$work/to-listener" >"$work/dialer.out" 2>"$work/dialer.err" ||
  fail "dial exited non-zero: $(cat "$work/dialer.err")"
wait "$listener_pid" || fail "listen exited non-zero: $(cat "$work/listener.err")"
listener_pid=""
cmp -s "$work/to-listener" "$work/listener.out" || fail "the listener received other bytes than sent"
cmp -s "$work/to-dialer" "$work/dialer.out" || fail "the dialer received other bytes than sent"
code_of() { sed -nE 's/.*verification code: (.*)$/\1/p' "$1" | head -n 1; }
listener_code="$(code_of "$work/listener.err")"
dialer_code="$(code_of "$work/dialer.err")"
[ -n "$dialer_code" ] && [ "$dialer_code" = "$listener_code" ] ||
  fail "verification codes differ: listener \"$listener_code\", dialer \"$dialer_code\""
say "ok: loopback listen/dial pipe moved 1 MiB each way intact; verification code $dialer_code"
say "all checks passed for securechat $version"
