// Package mime reads a message stream into a part map: a summary of the top
// header, and for each leaf part its byte range in the raw message, content
// type, charset, transfer encoding, filename and decoded size. It also
// transfer-decodes one part for retrieval.
//
// mime never fails a message because its MIME is broken: what it cannot
// parse, or what lies past one of its bounds, becomes one opaque part.
package mime

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
