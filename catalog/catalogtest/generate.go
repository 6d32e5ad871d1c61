package catalogtest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
)

// The shape of a generated corpus.
const (
	GenMailboxes  = 3000   // distinct envelope addresses
	GenDomains    = 200    // their domains
	GenVocabulary = 50_000 // distinct body and subject words
	GenDays       = 90     // the span of receive times
	genBatch      = 1000   // rows per Loader.Put
)

// GenStart is when a generated corpus's first message arrives.
var GenStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Corpus names the tokens of a generated catalog, so that a benchmark can
// ask for a word of a given rank or a mailbox's mail.
type Corpus struct {
	Seed uint64
	N    int
}

// The token fields of a generated corpus (stand-ins for blind's fields:
// the generator derives tokens with a fast mix, not the keyed HMAC).
const (
	genParty = iota + 1
	genFrom
	genFromDomain
	genTo
	genToDomain
	genSubject
	genBody
	genFilename
	genExt
)

func (c Corpus) token(field, value uint64) blind.Token {
	// splitmix64 over seed, field and value: distinct, uniform, cheap.
	x := c.Seed ^ field<<56 ^ value*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return blind.Token(x)
}

// BodyWord is the body token of the word of Zipf rank r (0: the commonest).
func (c Corpus) BodyWord(r int) blind.Token { return c.token(genBody, uint64(r)) }

// SubjectWord is the subject token of the word of rank r.
func (c Corpus) SubjectWord(r int) blind.Token { return c.token(genSubject, uint64(r)) }

// From is the from: token of mailbox m (0: the busiest).
func (c Corpus) From(m int) blind.Token { return c.token(genFrom, uint64(m)) }

// Party is the party token of mailbox m: a reader of m sees what carries it.
func (c Corpus) Party(m int) blind.Token { return c.token(genParty, uint64(m)) }

// End is just after the last message's receive time.
func (c Corpus) End() time.Time { return GenStart.Add(GenDays * 24 * time.Hour) }

// Generate writes n synthetic rows into cat through a Loader (the bulk
// path; PutBatch manages a few hundred rows a second once the postings
// outgrow the page cache), deterministic
// for a seed: received in order over GenDays days; a sender and one to
// three recipients drawn Zipf from GenMailboxes mailboxes (party, address
// and domain tokens); 3-8 subject words and 100-300 distinct body words
// drawn Zipf from GenVocabulary words; an attachment (file name and
// extension tokens) on one in six; log-normal sizes; a sealed-size
// summary of random bytes.
func Generate(ctx context.Context, cat *catalog.Catalog, n int, seed uint64) (Corpus, error) {
	c := Corpus{Seed: seed, N: n}
	load, err := cat.Load(ctx)
	if err != nil {
		return c, fmt.Errorf("catalogtest: generate: %w", err)
	}
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	mailbox := rand.NewZipf(r, 1.2, 1, GenMailboxes-1)
	word := rand.NewZipf(r, 1.1, 1, GenVocabulary-1)
	span := GenDays * 24 * time.Hour
	step := span / time.Duration(max(n, 1))
	batch := make([]catalog.Row, 0, genBatch)
	seen := make(map[blind.Token]struct{}, 512)
	for i := range n {
		clear(seen)
		var toks []blind.Token
		add := func(t blind.Token) {
			if _, ok := seen[t]; !ok {
				seen[t] = struct{}{}
				toks = append(toks, t)
			}
		}
		sender := mailbox.Uint64()
		add(c.token(genParty, sender))
		add(c.token(genFrom, sender))
		add(c.token(genFromDomain, sender%GenDomains))
		for range 1 + r.IntN(3) {
			rc := mailbox.Uint64()
			add(c.token(genParty, rc))
			add(c.token(genTo, rc))
			add(c.token(genToDomain, rc%GenDomains))
		}
		for range 3 + r.IntN(6) {
			add(c.token(genSubject, word.Uint64()))
		}
		body := 100 + r.IntN(201)
		for drawn, start := 0, len(toks); len(toks)-start < body && drawn < 6*body; drawn++ {
			add(c.token(genBody, word.Uint64()))
		}
		var flags catalog.Flags
		if r.IntN(6) == 0 {
			flags |= catalog.FlagAttachment
			add(c.token(genFilename, r.Uint64N(1_000_000)))
			add(c.token(genExt, r.Uint64N(12)))
		}
		summary := make([]byte, 150+r.IntN(250))
		for j := range summary {
			summary[j] = byte(r.Uint32())
		}
		batch = append(batch, catalog.Row{
			ID:         fmt.Sprintf("gen%010d", i),
			ReceivedAt: GenStart.Add(time.Duration(i)*step + time.Duration(r.Int64N(int64(step)))),
			Size:       int64(math.Exp(9.5 + 1.2*r.NormFloat64())),
			Flags:      flags,
			Tokens:     toks,
			Summary:    summary,
		})
		if len(batch) == genBatch || i == n-1 {
			if err := load.Put(ctx, batch); err != nil {
				return c, fmt.Errorf("catalogtest: generate: %w", err)
			}
			batch = batch[:0]
		}
	}
	if err := load.Finish(ctx); err != nil {
		return c, fmt.Errorf("catalogtest: generate: %w", err)
	}
	return c, nil
}
