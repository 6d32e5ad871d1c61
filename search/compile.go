// Package search joins the catalog to the rest of mailvaultd: it compiles
// query trees (searchquery) into catalog Exprs of blind tokens, indexes each
// delivery as it streams through the delivery core (Indexer), serves
// listings and searches from the catalog (Lister), and rebuilds and verifies
// the catalog against the archive (Rebuild, Verify).
//
// It never speaks HTTP, never authorises a reader (the retrieval layer
// checks every listed message against its caller) and never stores a term
// in clear: what it hands the catalog is tokens, times, sizes, flags and
// summaries sealed under the catalog's summary key.
package search

import (
	"fmt"

	"github.com/mailvault/mailvaultd/blind"
	"github.com/mailvault/mailvaultd/catalog"
	"github.com/mailvault/mailvaultd/listing"
	"github.com/mailvault/mailvaultd/searchquery"
)

// Compile turns a parsed query into a catalog Expr under k. Bare words and
// quoted phrases match all their words in the subject, a body part or a file
// name (the catalog keeps no positions, so a phrase is its words in any
// order). An operator value with nothing indexable in it (only
// punctuation, say) or an unknown has: is an error wrapping
// listing.ErrBadQuery that names the term.
func Compile(n searchquery.Node, k *blind.Key) (catalog.Expr, error) {
	switch n := n.(type) {
	case searchquery.And:
		return compileList(n.Nodes, k, func(es []catalog.Expr) catalog.Expr { return catalog.AllOf(es) })
	case searchquery.Or:
		return compileList(n.Nodes, k, func(es []catalog.Expr) catalog.Expr { return catalog.AnyOf(es) })
	case searchquery.Not:
		e, err := Compile(n.Node, k)
		if err != nil {
			return nil, err
		}
		return catalog.Not{E: e}, nil
	case searchquery.Term:
		return compileTerm(n, k)
	case searchquery.Has:
		if n.What != "attachment" {
			return nil, fmt.Errorf("%w: has:%s: only has:attachment is known", listing.ErrBadQuery, n.What)
		}
		return catalog.HasFlags(catalog.FlagAttachment), nil
	case searchquery.Date:
		return catalog.Received{After: n.After, Before: n.Before}, nil
	case searchquery.Size:
		return catalog.SizeRange{Min: n.Min, Max: n.Max}, nil
	case nil:
		return nil, fmt.Errorf("%w: empty query", listing.ErrBadQuery)
	default:
		return nil, fmt.Errorf("%w: unknown query node %T", listing.ErrBadQuery, n)
	}
}

func compileList(ns []searchquery.Node, k *blind.Key, wrap func([]catalog.Expr) catalog.Expr) (catalog.Expr, error) {
	if len(ns) == 1 {
		return Compile(ns[0], k)
	}
	es := make([]catalog.Expr, 0, len(ns))
	for _, n := range ns {
		e, err := Compile(n, k)
		if err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	return wrap(es), nil
}

// addressFields are the blind fields of the address operators.
var addressFields = map[string]blind.Field{
	"from": blind.FieldFrom, "to": blind.FieldTo, "cc": blind.FieldCc, "bcc": blind.FieldBcc,
}

func compileTerm(t searchquery.Term, k *blind.Key) (catalog.Expr, error) {
	var m blind.Match
	switch t.Op {
	case "":
		if t.Phrase {
			m = blind.PhraseTokens(k, t.Value)
		} else {
			m = blind.WordTokens(k, t.Value)
		}
	case "from", "to", "cc", "bcc":
		m = blind.AddressTokens(k, addressFields[t.Op], t.Value)
	case "subject":
		m = blind.FieldWordTokens(k, blind.FieldSubject, t.Value)
	case "filename":
		m = blind.FilenameTokens(k, t.Value)
	case "rfc822msgid":
		return catalog.HasToken(blind.MsgIDToken(k, t.Value)), nil
	case "list":
		return catalog.HasToken(blind.ListIDToken(k, t.Value)), nil
	default:
		return nil, fmt.Errorf("%w: unknown operator %s: at %d", listing.ErrBadQuery, t.Op, t.Pos)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: %s at %d: nothing searchable in %q", listing.ErrBadQuery, termName(t), t.Pos, t.Value)
	}
	return matchExpr(m), nil
}

func termName(t searchquery.Term) string {
	if t.Op == "" {
		if t.Phrase {
			return "phrase"
		}
		return "word"
	}
	return t.Op + ":"
}

// matchExpr is a blind.Match as an Expr: any alternative, all of its tokens.
func matchExpr(m blind.Match) catalog.Expr {
	alts := make([]catalog.Expr, 0, len(m))
	for _, alt := range m {
		all := make(catalog.AllOf, 0, len(alt))
		for _, tok := range alt {
			all = append(all, catalog.HasToken(tok))
		}
		if len(all) == 1 {
			alts = append(alts, all[0])
		} else {
			alts = append(alts, all)
		}
	}
	if len(alts) == 1 {
		return alts[0]
	}
	return catalog.AnyOf(alts)
}
