package export

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// ReadMbox reads an mboxrd export back: fn gets each message's From_ line
// (without its newline) and its bytes, unquoted, as they were written. It
// holds one message in memory at a time; it is for checking an export (the
// tests, an operator's spot check), not for reading arbitrary mboxes.
func ReadMbox(r io.Reader, fn func(fromLine string, msg []byte) error) error {
	br := bufio.NewReader(r)
	var (
		fromLine string
		msg      []byte
		started  bool
	)
	emit := func() error {
		if !started {
			return nil
		}
		// The writer's separator: the blank line before the next From_.
		if !bytes.HasSuffix(msg, []byte("\n")) {
			return fmt.Errorf("export: mbox message %q does not end in the separator", fromLine)
		}
		return fn(fromLine, msg[:len(msg)-1])
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if bytes.HasPrefix(line, []byte("From ")) {
				if err := emit(); err != nil {
					return err
				}
				fromLine, msg, started = string(bytes.TrimSuffix(line, []byte("\n"))), nil, true
			} else {
				if !started {
					return fmt.Errorf("export: mbox does not start with a From_ line")
				}
				gts := 0
				for gts < len(line) && line[gts] == '>' {
					gts++
				}
				if gts > 0 && bytes.HasPrefix(line[gts:], []byte("From ")) {
					line = line[1:]
				}
				msg = append(msg, line...)
			}
		}
		if err == io.EOF {
			return emit()
		}
		if err != nil {
			return err
		}
	}
}
