// Package searchquery parses the search language — the operators people
// already type into Gmail — into a tree. It owns the grammar, its bounds
// and its error messages (each with the byte position of the problem); it
// never knows how or where a query is run, never normalises a term (that is
// package blind) and never builds SQL: quotes, semicolons and percent signs
// are just characters of a word.
//
// # Grammar
//
//	query   = and
//	and     = or { ["AND"] or }            juxtaposition is AND
//	or      = unary { ("OR" | "|") unary } OR binds tighter than AND
//	unary   = ["-"] primary                the "-" touches its operand
//	primary = word | phrase | operator | "(" and ")" | "{" or { or } "}"
//	phrase  = '"' any bytes but '"' '"'
//	operator = name ":" (value | phrase | "(" and ")" | "{" ... "}")
//
// As in Gmail, "a b OR c" is a AND (b OR c), OR and AND are keywords only
// in upper case, and braces list alternatives: {a b} is a OR b. A term
// operator followed by a group applies to every word in it:
// subject:(a -b) is subject:a -subject:b. Operator names are matched
// case-insensitively (ASCII only); values are kept as typed.
//
// # Bounds
//
// A query is refused, with an *Error naming the byte where the problem is,
// when it is longer than MaxQueryBytes (checked first, before any other
// work), holds a control character (other than tab, CR and LF) or invalid
// UTF-8, has more than MaxTerms terms, nests groups deeper than MaxDepth,
// has a value longer than MaxValueBytes, names a day outside the years
// MinYear..MaxYear, a size above MaxSizeBytes, or an age (newer_than:,
// older_than:) above MaxAgeYears. So a parse does work linear in at most
// MaxQueryBytes, and the tree it returns has at most MaxTerms leaves.
//
// docs/SEARCH.md describes the language for users.
package searchquery
