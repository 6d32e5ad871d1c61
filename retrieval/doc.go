// Package retrieval owns how people read the archive: the HTTP API, the
// server-rendered web page and its sessions, authentication and the back-off
// on failed sign-ins, and authorisation.
//
// retrieval never writes to the archive, and owns none of what it reads
// through: it declares three interfaces and is given their implementations.
// A Lister makes the pages of a listing (archivelist over the archive's own
// index; later the catalog), Users answers whose token has a given hash
// (usersfile; later a database), and Audit records one access (auditlog;
// later a database). Messages are read from archive.Vault and opened with
// the sealer. Every decryption and every denial is recorded before retrieval
// forgets about a request.
//
// # Authentication
//
// A user presents a 256-bit random token, either as "Authorization: Bearer"
// (the API) or once on the sign-in form of the web page, which then holds a
// server-side session in an HttpOnly, SameSite=Strict cookie. retrieval
// hashes the token (SHA-256) and asks Users about the hash; a session keeps
// the hash and asks again on every request, so it ends when its user is
// removed or given a new token. Repeated failures from one address are met
// with a growing back-off (429).
//
// # Authorisation
//
// An auditor reads every message. A reader reads a message whose envelope
// sender or one of whose envelope recipients is one of the reader's mailboxes,
// both sides normalised with archive.NormalizeAddress. A message the caller may
// not read answers 404, exactly like one that does not exist. The rule is
// applied to every message a Lister returns as well, so an index that is wrong
// shows a reader nothing that is not theirs.
package retrieval
