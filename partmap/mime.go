// Package partmap reads a message stream into a part map: a summary of the top
// header, and for each leaf part its byte range in the raw message, content
// type, charset, transfer encoding, filename and decoded size. It also
// transfer-decodes one part for retrieval.
//
// mime never fails a message because its MIME is broken: what it cannot
// parse, or what lies past one of its bounds, becomes one opaque part.
//
// # Reading
//
// The Scanner reads the message once, line by line, in constant memory: one
// header at a time (MaxHeaderBytes), the first 256 bytes of the current line
// (enough to tell a boundary delimiter), the open boundaries (MaxDepth) and
// the Part records (MaxParts). Part bodies are not kept: base64 and
// quoted-printable bodies are decoded into a scratch buffer only to count
// DecodedSize, with the same decoders Decode uses, so the two always agree.
//
// Lines end in LF or CRLF; a lone CR is data, as in net/textproto. A header
// ends at an empty line or at the first line that is neither a field nor a
// continuation (that line opens the body). Multipart bodies follow RFC 2046:
// the line break before a delimiter belongs to the delimiter, a delimiter
// may carry trailing blanks, and a delimiter of an enclosing multipart also
// ends the nested ones (marked Broken "unterminated multipart").
//
// # Broken structure
//
// PartMap.Broken holds the first problem met. What cannot be read becomes
// an application/octet-stream part: a multipart without a boundary or
// nested deeper than MaxDepth (its body, to the end of the enclosing part),
// a part whose header is over MaxHeaderBytes (from the start of that
// header), a multipart without any part (its body). Past MaxParts, the last
// part recorded is turned into one opaque part running to the end of the
// message, so Parts never holds more than MaxParts records. A base64 body
// that does not decode stays a part; DecodedSize counts what decoded before
// the fault, and Decode fails there.
package partmap

// Limits bound what the scanner keeps in memory.
type Limits struct {
	MaxDepth       int // multipart nesting depth (default 32)
	MaxParts       int // leaf parts recorded (default 1000)
	MaxHeaderBytes int // header bytes per part (default 64 KiB)
}

// Header is the summary of the top-level header, RFC 2047-decoded.
type Header struct {
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Cc        string `json:"cc,omitempty"`
	Subject   string `json:"subject,omitempty"`
	Date      string `json:"date,omitempty"`
	MessageID string `json:"message_id,omitempty"`
}

// Part is one leaf part. Offset and Length are the byte range of its body
// (after its header, before any closing boundary) in the raw message.
type Part struct {
	Index            int    `json:"index"`
	Path             string `json:"path"` // "1.2": position in the tree
	ContentType      string `json:"content_type"`
	Charset          string `json:"charset,omitempty"`
	TransferEncoding string `json:"transfer_encoding,omitempty"`
	Disposition      string `json:"disposition,omitempty"`
	Filename         string `json:"filename,omitempty"`
	Offset           int64  `json:"offset"`
	Length           int64  `json:"length"`
	DecodedSize      int64  `json:"decoded_size"`
}

// PartMap is the structure of one message.
type PartMap struct {
	Header Header `json:"header"`
	Parts  []Part `json:"parts"`
	Size   int64  `json:"size"`
	// Broken says why (part of) the message was treated as opaque; empty
	// when the MIME structure was read in full.
	Broken string `json:"broken,omitempty"`
}
