package catalog

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvaultd/blind"
)

// TestSQLitePlans pins the property the schema exists for: a search driven
// by one posting list (or by the messages table) walks it in order and stops
// at its LIMIT, sorting only rows of equal receive time by id, and checks
// every other token by a point lookup on the postings key.
func TestSQLitePlans(t *testing.T) {
	ctx := context.Background()
	c, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, s := range map[string]Search{
		"one token":              {Where: HasToken(1)},
		"two tokens and a range": {Where: AllOf{HasToken(1), HasToken(2), Received{After: minTime.Add(1)}}},
		"no token":               {Where: HasFlags(FlagHeld)},
		"token and parties":      {Where: AllOf{HasToken(1), Not{E: HasToken(3)}}, Parties: []blind.Token{5, 6}},
		"one party":              {Parties: []blind.Token{5}},
	} {
		p, err := c.plan(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		var q query
		q.add("EXPLAIN QUERY PLAN SELECT m.id ")
		p.from(&q, p.hi, 0, false)
		q.add(" AND "+p.order+" <= ? AND ("+p.order+" < ? OR m.id > ?)", 5, 5, "x")
		p.filter(&q)
		q.add(" ORDER BY "+p.order+" DESC, m.id LIMIT ?", 51)
		rows, err := c.db.QueryContext(ctx, q.sql.String(), q.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		if strings.Contains(text, "TEMP B-TREE FOR ORDER BY") || strings.Contains(text, "SCAN") {
			t.Errorf("%s: plan sorts or scans everything:\n%s", name, text)
		}
		if strings.Contains(text, "EXISTS") && !strings.Contains(text, "USING PRIMARY KEY (token=? AND received_at=? AND msg=?)") {
			t.Errorf("%s: EXISTS is not a point lookup:\n%s", name, text)
		}
	}
}
