package searchquery

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

var (
	minTime = time.Date(MinYear, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(MaxYear, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// operatorValue turns the value of a non-term operator into its node, or
// says (msg) what is wrong with it.
func operatorValue(kind opKind, name, val string, now time.Time) (Node, string) {
	switch kind {
	case opHas:
		if asciiLower(val) != "attachment" {
			return nil, fmt.Sprintf("has: knows only has:attachment, not %q", val)
		}
		return Has{What: "attachment"}, ""
	case opAfter, opBefore:
		t, msg := parseDay(name, val)
		if msg != "" {
			return nil, msg
		}
		if kind == opAfter {
			return Date{After: t}, ""
		}
		return Date{Before: t}, ""
	case opNewer, opOlder:
		t, msg := parseAge(name, val, now)
		if msg != "" {
			return nil, msg
		}
		if kind == opNewer {
			return Date{After: t}, ""
		}
		return Date{Before: t}, ""
	case opLarger, opSmaller:
		n, msg := parseSize(name, val)
		if msg != "" {
			return nil, msg
		}
		if kind == opLarger {
			return Size{Min: n}, ""
		}
		if n == 0 {
			// Size{} would read as "any size"; smaller:0 can match nothing.
			return nil, "smaller: needs a size of at least 1 byte"
		}
		return Size{Max: n}, ""
	}
	panic("searchquery: operator kind without a value parser: " + name)
}

// parseDay reads YYYY-MM-DD or YYYY/MM/DD (month and day of one or two
// digits) as the start of that day in UTC, or an RFC 3339 time (the form
// a Date that is not midnight renders as, so canonical queries re-parse).
func parseDay(name, val string) (time.Time, string) {
	bad := fmt.Sprintf("%s: wants a day as YYYY-MM-DD or YYYY/MM/DD, not %q", name, val)
	badYear := fmt.Sprintf("%s: the year must be within %d..%d", name, MinYear, MaxYear)
	if year, _, ok := strings.Cut(strings.ReplaceAll(val, "/", "-"), "-"); ok && allDigits(year) && len(year) != 4 {
		return time.Time{}, badYear + ", not " + year
	}
	if strings.ContainsAny(val, "Tt") {
		t, err := time.Parse(time.RFC3339Nano, val)
		if err != nil {
			return time.Time{}, bad
		}
		t = t.UTC()
		if t.Before(minTime) || t.After(maxTime) {
			return time.Time{}, badYear + " (in UTC)"
		}
		return t, ""
	}
	sep := "-"
	if !strings.Contains(val, sep) {
		sep = "/"
	}
	parts := strings.Split(val, sep)
	if len(parts) != 3 || !allDigits(parts[0]) || !allDigits(parts[1]) || !allDigits(parts[2]) ||
		len(parts[1]) > 2 || len(parts[2]) > 2 {
		return time.Time{}, bad
	}
	y, _ := strconv.Atoi(parts[0])
	m, _ := strconv.Atoi(parts[1])
	d, _ := strconv.Atoi(parts[2])
	if len(parts[0]) != 4 || y < MinYear {
		return time.Time{}, badYear + ", not " + parts[0]
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if m < 1 || m > 12 || t.Day() != d {
		return time.Time{}, fmt.Sprintf("%s: %q is not a day of the calendar", name, val)
	}
	return t, ""
}

// ageLimit is the largest count each unit takes: MaxAgeYears in that unit.
var ageLimit = map[byte]uint64{
	'h': MaxAgeYears * 366 * 24,
	'd': MaxAgeYears * 366,
	'm': MaxAgeYears * 12,
	'y': MaxAgeYears,
}

// parseAge reads a count and a unit (h hours, d days, m calendar months,
// y calendar years) and returns now minus that age, kept within
// MinYear..MaxYear.
func parseAge(name, val string, now time.Time) (time.Time, string) {
	bad := fmt.Sprintf("%s: wants a number and a unit h, d, m or y (7d, 2m, 1y), not %q", name, val)
	if len(val) < 2 {
		return time.Time{}, bad
	}
	digits, unit := val[:len(val)-1], val[len(val)-1]
	if 'A' <= unit && unit <= 'Z' {
		unit += 'a' - 'A'
	}
	limit, ok := ageLimit[unit]
	if !ok || !allDigits(digits) {
		return time.Time{}, bad
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > limit {
		return time.Time{}, fmt.Sprintf("%s: the age must be at most %d years (%d%c)", name, MaxAgeYears, limit, unit)
	}
	k := int(n)
	var t time.Time
	switch unit {
	case 'h':
		t = now.Add(-time.Duration(k) * time.Hour)
	case 'd':
		t = now.AddDate(0, 0, -k)
	case 'm':
		t = now.AddDate(0, -k, 0)
	case 'y':
		t = now.AddDate(-k, 0, 0)
	}
	// Past the ends of the range a date matches all or nothing either way;
	// clamping keeps every Date renderable as a query that re-parses.
	if t.Before(minTime) {
		t = minTime
	}
	if t.After(maxTime) {
		t = maxTime
	}
	return t, ""
}

var sizeUnit = map[byte]int64{'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}

// parseSize reads bytes, or a count of K, M or G (binary: 1K = 1024).
func parseSize(name, val string) (int64, string) {
	bad := fmt.Sprintf("%s: wants a size in bytes or with K, M or G (200K, 5M), not %q", name, val)
	digits, mult := val, int64(1)
	if val != "" {
		last := val[len(val)-1]
		if 'A' <= last && last <= 'Z' {
			last += 'a' - 'A'
		}
		if u, ok := sizeUnit[last]; ok {
			digits, mult = val[:len(val)-1], u
		}
	}
	if !allDigits(digits) {
		return 0, bad
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > MaxSizeBytes/mult {
		return 0, fmt.Sprintf("%s: the size must be at most %d bytes (1024G)", name, int64(MaxSizeBytes))
	}
	return n * mult, ""
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
