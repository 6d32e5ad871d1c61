package ingest

import (
	"errors"
	"fmt"

	"github.com/mailvault/mailvaultd/sealer/awskms"
)

// Stages of a delivery, as Error.Stage names them (and logs and metrics
// label failures).
const (
	StageKeys     = "keys"     // the key provider
	StageStore    = "store"    // the archive
	StageRead     = "read"     // reading the message from the front end
	StageForward  = "forward"  // the next hop, or preparing what it gets
	StageInternal = "internal" // a bug: a panic, an encoding failure
)

// Kind is what a failure means for the front end's answer.
type Kind int

const (
	KindInternal    Kind = iota // anything else; temporary
	KindKeys                    // the key service failed; temporary
	KindStore                   // the archive failed; temporary
	KindRead                    // reading the message failed; temporary
	KindTimeout                 // the delivery's deadline passed; temporary
	KindTooBig                  // the message is over the front end's limit; permanent
	KindLineTooLong             // a line is over the front end's limit; permanent
	KindNextHop                 // the next hop failed or refused; permanent if it said so
)

var kindNames = [...]string{"internal", "keys failed", "store failed", "read failed", "timeout",
	"too big", "line too long", "next hop failed"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind %d", int(k))
}

// Error is every failure Deliver returns: which stage failed, what it means,
// whether a retry may succeed, and the cause (for the log, never for a
// client).
type Error struct {
	Stage     string
	Kind      Kind
	Temporary bool
	// KeyFailure, for KindKeys, is the key service's own class of the
	// failure when it gives one (awskms: "transient", "key unusable",
	// "invalid request or response"), so that an operator tells throttling
	// from a disabled key or denied access without reading the cause.
	KeyFailure string
	Err        error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Stage, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Sentinels a front end wraps into the error of its message reader, so that
// Deliver can tell a client's fault from a broken connection.
var (
	ErrTooBig      = errors.New("ingest: message over the size limit")
	ErrLineTooLong = errors.New("ingest: line over the length limit")
)

// Permanent is implemented by a Forwarder's errors that know whether the
// next hop refused the message for good (an SMTP 5xx). Any forwarding
// failure without it is temporary.
type Permanent interface {
	Permanent() bool
}

func fail(stage string, kind Kind, err error) *Error {
	return &Error{Stage: stage, Kind: kind, Temporary: true, Err: err}
}

// keysFailure classifies a key-provider failure.
func keysFailure(err error) *Error {
	e := fail(StageKeys, KindKeys, err)
	var ke *awskms.Error
	if errors.As(err, &ke) {
		e.KeyFailure = ke.Kind.String()
	}
	return e
}

// readFailure classifies an error reading the message.
func readFailure(err error) *Error {
	switch {
	case errors.Is(err, ErrTooBig):
		return &Error{Stage: StageRead, Kind: KindTooBig, Err: err}
	case errors.Is(err, ErrLineTooLong):
		return &Error{Stage: StageRead, Kind: KindLineTooLong, Err: err}
	}
	return fail(StageRead, KindRead, err)
}

// NextHopFailure classifies an error from the next hop: the Forwarder's
// inside Deliver, and a front end's own outside it (such as opening the
// next hop's DATA), so that both are logged and answered alike.
func NextHopFailure(err error) *Error {
	e := fail(StageForward, KindNextHop, err)
	var p Permanent
	if errors.As(err, &p) && p.Permanent() {
		e.Temporary = false
	}
	return e
}
