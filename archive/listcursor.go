package archive

// CursorAfter returns the List cursor that resumes a listing just after e.
// Every List orders entries the same way (newest first; entries received at
// the same nanosecond by id, ascending: the order of their keys), and a
// cursor names a position in that order, not a mailbox; so a listing merged
// from several mailboxes (archivelist) resumes every one of them from the
// last entry it served with this one cursor. e must come from List.
func CursorAfter(e Entry) string { return encodeCursor(invTime(e.ReceivedAt) + "-" + e.ID) }

// ValidCursor reports whether List would accept cursor, so that a caller can
// tell a client's malformed cursor from a failing store.
func ValidCursor(cursor string) bool {
	_, err := decodeCursor(cursor)
	return err == nil
}
