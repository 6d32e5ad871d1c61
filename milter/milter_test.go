package milter

import (
	"errors"
	"testing"

	"github.com/mailvault/mailvaultd/ingest"
)

func TestAppendHeader(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"Subject", " hello", "Subject: hello\r\n"},
		{"X-Tight", "no-space", "X-Tight:no-space\r\n"},
		{"X-Folded", " one\n\ttwo\n  three", "X-Folded: one\r\n\ttwo\r\n  three\r\n"},
		{"X-CRLF", " a\r\n b", "X-CRLF: a\r\n b\r\n"},
	} {
		if got := string(appendHeader(nil, tc.name, tc.value)); got != tc.want {
			t.Errorf("appendHeader(%q, %q) = %q, want %q", tc.name, tc.value, got, tc.want)
		}
	}
}

func TestCRLFBody(t *testing.T) {
	for _, tc := range []struct {
		chunks []string
		want   string
	}{
		{[]string{"a\r\nb\r\n"}, "a\r\nb\r\n"},
		{[]string{"a\nb\n"}, "a\r\nb\r\n"},
		{[]string{"a\r", "\nb\r\n"}, "a\r\nb\r\n"},
		{[]string{"a", "\n"}, "a\r\n"},
	} {
		var c crlfBody
		var got []byte
		for _, ch := range tc.chunks {
			got = c.convert(got, []byte(ch))
		}
		if string(got) != tc.want {
			t.Errorf("%q -> %q, want %q", tc.chunks, got, tc.want)
		}
	}
}

func TestToReply(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code uint16
	}{
		{&ingest.Error{Kind: ingest.KindStore, Temporary: true}, 451},
		{&ingest.Error{Kind: ingest.KindKeys, Temporary: true}, 451},
		{&ingest.Error{Kind: ingest.KindTimeout, Temporary: true}, 451},
		{&ingest.Error{Kind: ingest.KindTooBig}, 552},
		{errors.New("anything else"), 451},
	} {
		if got := toReply(tc.err); got.code != tc.code {
			t.Errorf("toReply(%v) = %d, want %d", tc.err, got.code, tc.code)
		}
		_ = toReply(tc.err).response() // every reply is one the library accepts
	}
}

func TestESMTPFlags(t *testing.T) {
	var env ingest.Envelope
	esmtpFlags(&env, "SIZE=100 BODY=8BITMIME SMTPUTF8")
	if !env.Body8BitMIME || !env.SMTPUTF8 {
		t.Errorf("flags not read: %+v", env)
	}
}
