package config

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestSMTPAllow(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []netip.Prefix // nil: an error is expected
		key       string
		reason    string
	}{
		{name: "default is loopback", src: "",
			want: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
		{name: "list replaces the default", src: "smtp: { allow: [\"127.0.0.2/32\", \"fd00::/8\"] }\n",
			want: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("fd00::/8")}},
		{name: "host bits are masked", src: "smtp: { allow: [\"10.1.2.3/8\"] }\n",
			want: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{name: "bad prefix length names the index", src: "smtp: { allow: [\"127.0.0.0/8\", \"::1/128\", \"10.0.0.0/33\"] }\n",
			key: "smtp.allow[2]", reason: `"10.0.0.0/33" is not a CIDR network`},
		{name: "bare address is not a network", src: "smtp: { allow: [\"127.0.0.1\"] }\n",
			key: "smtp.allow[0]", reason: `"127.0.0.1" is not a CIDR network`},
		{name: "host name is not a network", src: "smtp: { allow: [\"localhost/8\"] }\n",
			key: "smtp.allow[0]", reason: "is not a CIDR network"},
		{name: "empty list", src: "smtp: { allow: [] }\n",
			key: "smtp.allow", reason: "no client could send mail"},
		{name: "not a list", src: "smtp: { allow: 127.0.0.0/8 }\n",
			key: "smtp.allow", reason: "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.src), "mailvaultd.yaml")
			if tc.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := c.SMTP.AllowNets(); !slices.Equal(got, tc.want) {
					t.Errorf("AllowNets() = %v, want %v", got, tc.want)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a configuration error", err)
			}
			if ce.Key != tc.key || !strings.Contains(ce.Reason, tc.reason) || ce.File != "mailvaultd.yaml" {
				t.Errorf("got %q (key %q), want key %q and a reason containing %q", err, ce.Key, tc.key, tc.reason)
			}
		})
	}
}
