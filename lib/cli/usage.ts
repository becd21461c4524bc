/**
 * Help texts (Usage / Options / Examples) for every command, the command names with their
 * summaries, and the version, which comes from deno.json alone so a release tag can be checked
 * against one place. It imports no command module: `commands.ts` does, so that the commands can
 * import their help from here without an import circle.
 *
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };

/** The version printed by `securechat --version`. */
export const VERSION: string = denoJson.version;

/** Every subcommand and its one-line summary; `commands.ts` loads each by the same name. */
export const COMMAND_SUMMARIES = {
  keygen: "create your identity key pair",
  fingerprint: "print the fingerprint of a public or private key",
  listen: "wait for a peer to dial in",
  dial: "connect to a listening peer",
  relay: "run a rendezvous relay where peers behind NAT meet",
  completions: "print a shell completion script (bash, zsh, fish)",
} as const;

/** The name of a subcommand. */
export type CommandName = keyof typeof COMMAND_SUMMARIES;

/** `securechat --help`. */
export function mainUsage(): string {
  const width = Math.max(...Object.keys(COMMAND_SUMMARIES).map((name) => name.length));
  const lines = Object.entries(COMMAND_SUMMARIES).map(([name, summary]) =>
    `  ${name.padEnd(width)}  ${summary}`
  );
  return `securechat ${VERSION}: end-to-end encrypted chat, files and pipes over TCP

Usage:
  securechat <command> [flags]

Commands:
${lines.join("\n")}

Flags:
  -h, --help      show help (also "securechat <command> --help")
  -V, --version   print the version

Examples:
  securechat keygen
  securechat listen --port 65432 > received.tar
  tar c somedir | securechat dial 127.0.0.1:65432
  securechat relay --host 0.0.0.0                    # a rendezvous relay, port 65433
  securechat listen --via relay.example              # no port of its own
  securechat dial SHA256:... --via relay.example     # the listener's fingerprint
  securechat completions bash > ~/.local/share/bash-completion/completions/securechat

Environment:
  SECURECHAT_HOME        folder of your identity and known_hosts (default ~/.securechat)
  SECURECHAT_PASSPHRASE  passphrase of your private key, for scripts`;
}

const IDENTITY_FLAGS =
  `  -i, --identity PATH           private key to use (default $SECURECHAT_HOME/id)
      --passphrase-file F       read the key's passphrase from file F`;

const SESSION_FLAGS =
  `      --name NAME               the name others see (default: your key's comment)
      --json                    chat as JSON lines: events on stdout, messages from stdin
      --pipe                    raw pipe mode: stdin to the peer, the peer to stdout
                                (the default whenever stdin or stdout is not a terminal)
      --handshake-timeout S     seconds the handshake may take (default 10)
      --keepalive S             ping after S seconds of silence; a peer silent for 3*S is
                                presumed dead (default 30; 0 turns keepalives off)
      --progress                pipe mode: show a progress line on stderr`;

/** Help text of each command. */
export const USAGE: Record<string, string> = {
  keygen: `Usage:
  securechat keygen [flags]

Creates an identity key pair: a private key (PKCS#8 PEM, mode 0600) and a public key (SPKI PEM).
Windows has no file modes: there the private key is as private as the folder it is written to
(your user profile, the default, admits only you, administrators and the system), and keygen
warns when that folder is outside your profile.

Flags:
      --type rsa-pss|ed25519   key type (default rsa-pss)
      --bits 3072|4096         RSA modulus size (default 3072)
      --out PATH               private key path; the public key goes to PATH.pub
                               (default $SECURECHAT_HOME/id)
      --comment TEXT           name shown to peers (default user@host)
      --force                  overwrite an existing key pair
      --no-passphrase          do not protect the private key with a passphrase
      --passphrase-file F      read the passphrase from file F (else SECURECHAT_PASSPHRASE,
                               else ask twice on the terminal)
  -h, --help                   show this help

Examples:
  securechat keygen
  securechat keygen --type ed25519 --comment alice --no-passphrase`,

  fingerprint: `Usage:
  securechat fingerprint [FILE]

Prints the SHA-256 fingerprint of a public or private key file, followed by its comment, in the
form that authorized_keys takes. FILE defaults to $SECURECHAT_HOME/id.pub.

Flags:
      --passphrase-file F   passphrase, when FILE is an encrypted private key
  -h, --help                show this help

Examples:
  securechat fingerprint
  securechat fingerprint bob.pub >> ~/.securechat/authorized_keys`,

  listen: `Usage:
  securechat listen [flags]

Waits for dialers on HOST:PORT, or at a rendezvous relay with --via, and runs the authenticated
handshake with each. On a terminal it opens an end-to-end encrypted room (an MLS group) that you
take part in and admin: everyone the listener lets in is admitted (type /help). With --relay-only
it only relays a room it cannot read, whose first member admits the others. In pipe mode it moves
raw bytes with one peer.

Flags:
      --host HOST               address to listen on (default 127.0.0.1; 0.0.0.0 for all)
  -p, --port PORT               port to listen on (default 65432; 0 picks a free one)
      --via RELAY[:PORT][,...]  open no port: wait for dialers at the rendezvous relay RELAY
                                ("securechat relay", default port 65433), where they find you by
                                your fingerprint; if the relay goes away, register again (at the
                                next relay of a list, in turn)
      --relay-key SHA256:...    with --via: accept only this key for the relay (else known_hosts,
                                which records it on first contact)
      --authorized-keys FILE    admit only the keys listed in FILE (lines "SHA256:... name")
      --suites LIST             key agreement suites to accept, in order of preference
                                (default x25519-mlkem768,x25519; add ffdhe3072 to accept it)
      --record-suites LIST      record ciphers to accept, in order of preference
                                (default chacha20-poly1305,aes-256-gcm)
      --keep-open               in pipe mode, serve one peer after another instead of exiting
      --max-waiting N           with --keep-open, peers that wait their turn (default 8, at most
                                half from one address); the rest are refused as busy
      --relay-only              relay a room without taking part (a service that sees no
                                plaintext, only who is connected, when, and sizes); log to stderr
      --max-members N           members a room admits (default 256)
      --max-pending-handshakes N  handshakes in progress at once; a new connection evicts
                                the oldest of the address with the most (default 256)
      --max-pending-per-address N  handshakes in progress at once from one address; a new one
                                evicts that address's oldest (default 32)
      --receive DIR             one shot: accept the first file or folder sent into DIR, then exit
      --accept-files DIR        in a chat, accept file offers into DIR without asking
      --allow-hidden-files      accept files and folders whose names start with "." (refused by
                                default: a file offer must not plant dotfiles)
      --max-file-size SIZE      reject file offers larger than SIZE (e.g. 500M, 2G; default 1G
                                when offers are accepted without asking); any offer larger
                                than the free space of the receive folder is rejected too
${IDENTITY_FLAGS}
${SESSION_FLAGS}
  -h, --help                    show this help

Examples:
  securechat listen                                  # a chat room on 127.0.0.1:65432
  securechat listen --port 65432 > received.tar
  securechat listen --host 0.0.0.0 --authorized-keys ~/.securechat/authorized_keys
  securechat listen --via relay.example --receive ~/incoming   # behind NAT, one file`,

  dial: `Usage:
  securechat dial HOST[:PORT] [flags]
  securechat dial FINGERPRINT --via RELAY[:PORT][,...] [flags]
  securechat dial RELAY[:PORT][,...] --room NAME [flags]

Connects to a listener (default port 65432), checks its identity against known_hosts (recording
it on first contact) or the pinned fingerprint, and runs the handshake. On a terminal it joins the
listener's end-to-end encrypted room (type /help): an admin of the room admits you, or you make the
room when you are the first to arrive at a relay-only listener. In pipe mode it moves raw bytes.
With --via it meets a listener that waits at a rendezvous relay, by its fingerprint, and accepts
no other key; with --room it joins a room by name on a relay. A list of relays (RELAY1,RELAY2) is
tried in order; in a room on relays sharing a cluster, a lost relay is replaced by the next one
without leaving the room.

Flags:
      --expect SHA256:...       accept only this listener fingerprint (no known_hosts use)
      --via RELAY[:PORT][,...]  meet the listener of FINGERPRINT (or of the one key known_hosts
                                lists for a HOST[:PORT] given instead) at the rendezvous relay
                                RELAY (default port 65433), or at the first of a list that has it
      --room NAME               join the end-to-end encrypted room NAME on the relay dialed
                                (its first member makes it and admits the others)
      --relay-key SHA256:...    with --via or --room: accept only this key for the relay (else
                                known_hosts, which records it on first contact)
      --send PATH               one shot: offer PATH (file or folder) to the listener, then exit
      --admit FILE              in a room you admin, admit newcomers whose keys FILE lists
                                (lines "SHA256:... name", as authorized_keys) without asking
      --accept-files DIR        in a chat, accept file offers into DIR without asking
      --allow-hidden-files      accept files and folders whose names start with "." (refused by
                                default: a file offer must not plant dotfiles)
      --max-file-size SIZE      reject file offers larger than SIZE (e.g. 500M, 2G; default 1G
                                when offers are accepted without asking); any offer larger
                                than the free space of the receive folder is rejected too
      --suites LIST             key agreement suites to offer, in order of preference
                                (default x25519-mlkem768,x25519)
      --record-suites LIST      record ciphers to offer, in order of preference
                                (default chacha20-poly1305,aes-256-gcm)
${IDENTITY_FLAGS}
${SESSION_FLAGS}
  -h, --help                    show this help

Examples:
  securechat dial 127.0.0.1                          # join the chat
  tar c somedir | securechat dial 127.0.0.1:65432
  securechat dial example.org --expect SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU
  securechat dial SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU --via relay.example
  securechat dial relay.example --room "book club" --admit friends`,

  relay: `Usage:
  securechat relay [flags]

Runs a rendezvous relay until SIGTERM or Ctrl-C. Peers that can only make outbound connections
meet there: a listener registers under its fingerprint and dialers ask for it (the via flag of
"securechat listen" and "securechat dial"), and members meet in rooms by name (the room flag of
"securechat dial"). The relay joins the two connections and copies bytes: the end-to-end
handshake runs through it, so it reads nothing and holds no key of any session. It learns each
client's address, when it comes and goes, how many bytes pass, and a token per listener or room
(a hash of its fingerprint or name). Clients check its key, your securechat key, like a
listener's. It logs to stderr. On SIGTERM or SIGINT it stops accepting, tells waiting listeners
that the relay is shutting down, closes every connection and exits 0.

Flags:
      --host HOST               address to listen on (default 127.0.0.1; 0.0.0.0 for all)
  -p, --port PORT               port to listen on (default 65433; 0 picks a free one)
      --max-connections-per-address N  connections at once from one address (an IPv6 address
                                counts by its /64; default 64)
      --max-waiting N           listeners waiting for a dialer, in all (default 4096)
      --max-waiting-per-address N  listeners waiting from one address (default 32)
      --registration-life S     seconds a listener's registration lasts before it must register
                                again (default 3600)
      --rate-per-address SIZE   bytes a second copied for one address, both ways together (e.g.
                                64M, the default); past it the copy slows down, never drops
      --max-pending-handshakes N  handshakes in progress at once; a new connection evicts
                                the oldest of the address with the most (default 256)
      --max-pending-per-address N  handshakes in progress at once from one address (default 32)
      --max-members N           members a room on the relay admits (default 256)
      --nats URL[,URL...]       share rooms and registrations with the other relays of a NATS
                                cluster with JetStream (every relay of it uses the same key)
      --advertise HOST:PORT     with --nats: where dialers reach this relay, for redirects
                                between relays (default --host:--port, unless that is 0.0.0.0
                                or ::, where it must be given)
      --nats-replicas N         with --nats: copies of the room log the cluster keeps (default 3)
${IDENTITY_FLAGS}
  -h, --help                    show this help

Examples:
  securechat relay --host 0.0.0.0                    # on a machine everyone can reach
  securechat relay --host 0.0.0.0 --nats nats://n1:4222 --advertise r1.example:65433
  securechat relay --host 0.0.0.0 --port 443 --rate-per-address 8M
  securechat fingerprint                             # the key clients pin with the relay-key flag`,

  completions: `Usage:
  securechat completions bash|zsh|fish

Prints a completion script for the shell: the commands, their flags, and the values the flags
take (files, folders, key types, suites).

Flags:
  -h, --help   show this help

Install:
  bash   securechat completions bash > ~/.local/share/bash-completion/completions/securechat
  zsh    securechat completions zsh > ~/.zfunc/_securechat
         (with "fpath=(~/.zfunc $fpath); autoload -U compinit; compinit" in ~/.zshrc)
  fish   securechat completions fish > ~/.config/fish/completions/securechat.fish

Examples:
  source <(securechat completions bash)      # this bash session only`,
};
