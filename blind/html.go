package blind

import (
	"io"

	"golang.org/x/net/html"
)

// maxHTMLToken bounds what the HTML tokenizer buffers for one token (a run
// of text between tags, or one tag with its attributes). Past it the rest
// of the part is not read for words.
const maxHTMLToken = 256 << 10

// inlineTags do not separate words: "<b>in</b>voice" is one word.
var inlineTags = map[string]bool{
	"a": true, "abbr": true, "b": true, "bdi": true, "bdo": true, "cite": true, "code": true,
	"data": true, "dfn": true, "em": true, "font": true, "i": true, "kbd": true, "mark": true,
	"q": true, "s": true, "samp": true, "small": true, "span": true, "strike": true,
	"strong": true, "sub": true, "sup": true, "time": true, "tt": true, "u": true, "var": true,
	"wbr": false,
}

// htmlText streams the text of an HTML document to w: tags, comments,
// scripts and styles dropped, character references decoded, and a space
// written wherever a non-inline tag separates two runs of text. It reads r
// as a stream; it stops early only when one token exceeds maxHTMLToken.
func htmlText(r io.Reader, w func(string)) {
	z := html.NewTokenizer(r)
	z.SetMaxBuf(maxHTMLToken)
	hidden := 0 // inside <script> or <style>
	for {
		switch z.Next() {
		case html.ErrorToken:
			return
		case html.TextToken:
			if hidden == 0 {
				w(string(z.Text()))
			}
		case html.StartTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style":
				hidden++
			default:
				if !inlineTags[string(name)] {
					w(" ")
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style":
				if hidden > 0 {
					hidden--
				}
			default:
				if !inlineTags[string(name)] {
					w(" ")
				}
			}
		case html.SelfClosingTagToken:
			if name, _ := z.TagName(); !inlineTags[string(name)] {
				w(" ")
			}
		}
	}
}
