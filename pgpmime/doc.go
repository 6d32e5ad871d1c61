// Package pgpmime re-encrypts outgoing mail for recipients whose OpenPGP
// public key mailvaultd holds, as PGP/MIME (RFC 3156).
//
// It owns the recipient keyring (loading, judging and matching keys), the
// forwarding policy (which recipients get ciphertext, which get the original
// and which are refused), recognising mail that is already encrypted, and the
// streaming PGP/MIME encryptor.
//
// openpgp never sees an SMTP connection, a config file or a storage backend,
// and never holds a whole message: the caller streams the message through
// NewPGPMIMEWriter and gets the encrypted message streamed to its writer.
// It never signs and never decrypts: it holds public keys only.
//
// # Flow
//
// The forwarding stage, per message:
//
//  1. Sniff the message. Mail that is already encrypted (multipart/encrypted,
//     S/MIME enveloped data, an inline PGP message) goes to every recipient
//     unchanged.
//  2. Plan the envelope recipients under the configured Policy against the
//     current Keyring: one group to encrypt (and the keys to encrypt to), one
//     to send the original to, and those to refuse (550 5.7.1 under
//     PolicyRequired).
//  3. Send each group in its own next-hop transaction; for the encrypted
//     group, write the original message into NewPGPMIMEWriter, whose output
//     is the DATA of that transaction.
//
// # Keys
//
// LoadKeyring reads ASCII-armoured (or binary) public keys, judges every key
// once (revoked, expired, no usable encryption key, too weak: not used, and
// logged with its fingerprint) and indexes the usable ones by the e-mail
// addresses of their user IDs, overridden by an explicit address→fingerprint
// map. A Keyring is immutable: reload by loading a new one and swapping the
// pointer (for instance on SIGHUP).
package pgpmime
