// Package retrieval owns how people read the archive: the HTTP API, the users
// file and its bearer tokens, authorisation, the hash-chained audit log and the
// server-rendered web page.
//
// retrieval never writes to the archive. It reads sealed objects through
// archive.Vault, opens them with the sealer, and records every decryption and
// every denial in the audit log before it forgets about a request.
//
// # Authentication
//
// A user presents a 256-bit random token, either as "Authorization: Bearer"
// (the API) or once on the sign-in form of the web page, which then holds a
// server-side session in an HttpOnly, SameSite=Strict cookie. The users file
// keeps only the SHA-256 of each token; tokens are compared in constant time.
// Repeated failures from one address are met with a growing back-off (429).
//
// # Authorisation
//
// An auditor reads every message. A reader reads a message whose envelope
// sender or one of whose envelope recipients is one of the reader's mailboxes,
// both sides normalised with archive.NormalizeAddress. A message the caller may
// not read answers 404, exactly like one that does not exist.
//
// # Audit
//
// Each audit line is one JSON object that carries its sequence number, the
// SHA-256 of the previous line and the SHA-256 of itself, so that an edited,
// inserted or deleted line is found by VerifyAuditLog.
package retrieval
