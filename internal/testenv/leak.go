package testenv

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"sort"
	"strings"
)

// Sizes of the fragments LeakForms searches for in hex dumps.
const (
	// DumpTextWindow is the length of the raw windows searched for in the
	// ASCII column of an encoding/hex.Dump (16 bytes a row): any secret of 23
	// bytes or more has 12 consecutive bytes in one row.
	DumpTextWindow = 12
	// DumpHexWindow is the length of the windows whose space-separated hex
	// is searched for: a dump row is two groups of 8 bytes ("6b 65 79 5f
	// ..."), and any secret of 15 bytes or more fills one group.
	DumpHexWindow = 8
)

// LeakForms returns every form in which secret could show up in a log, an
// Event, a status or a metric, by form name:
//
//   - raw, JSON-escaped and URL-escaped (the last two only when they differ);
//   - base64 standard and URL alphabets, padded and raw, as the encoding of
//     exactly the secret (a Secret's data in JSON), each only when it
//     differs from the forms before it;
//   - base64 of a larger value that contains the secret at any of the three
//     byte alignments (the secret inside an encoded JSON or protobuf body):
//     only the characters that depend on the secret's bytes alone;
//   - hex in lower and upper case;
//   - fragments of an encoding/hex.Dump (client-go logs a binary body that
//     way): every printable DumpTextWindow-byte window of the secret, as the
//     dump's ASCII column shows it, and the space-separated hex of every
//     DumpHexWindow-byte window.
//
// Names of windowed forms end in "[i:j]"; FindLeaks reports them by kind.
// Pass only the secret part of a credential: a window of a public prefix
// (a token id) would match where the id is legitimately logged.
func LeakForms(secret []byte) map[string][]byte {
	forms := map[string][]byte{"raw": bytes.Clone(secret)}
	if q, err := json.Marshal(string(secret)); err == nil {
		if esc := q[1 : len(q)-1]; !bytes.Equal(esc, secret) {
			forms["JSON-escaped"] = esc
		}
	}
	if esc := url.QueryEscape(string(secret)); esc != string(secret) {
		forms["URL-escaped"] = []byte(esc)
	}
	// The base64 family, without a form equal to an earlier one (no '+'
	// or '/' in the encoding: base64url is base64; a length divisible by 3:
	// no padding).
	seen := map[string]bool{}
	add := func(name string, v []byte) {
		if len(v) > 0 && !seen[string(v)] {
			seen[string(v)] = true
			forms[name] = v
		}
	}
	add("base64", []byte(base64.StdEncoding.EncodeToString(secret)))
	add("base64 (unpadded)", []byte(base64.RawStdEncoding.EncodeToString(secret)))
	add("base64url", []byte(base64.URLEncoding.EncodeToString(secret)))
	add("base64url (unpadded)", []byte(base64.RawURLEncoding.EncodeToString(secret)))
	for _, e := range []struct {
		name string
		enc  *base64.Encoding
	}{
		{"base64 inside a larger value", base64.RawStdEncoding},
		{"base64url inside a larger value", base64.RawURLEncoding},
	} {
		for shift := range 3 {
			if core := base64Core(e.enc, secret, shift); len(core) >= 8 {
				add(fmt.Sprintf("%s [offset %d mod 3]", e.name, shift), core)
			}
		}
	}
	forms["hex"] = []byte(hex.EncodeToString(secret))
	forms["hex (upper case)"] = []byte(strings.ToUpper(hex.EncodeToString(secret)))
	for i := 0; i+DumpTextWindow <= len(secret); i++ {
		// Only printable windows: the dump shows any other byte as '.', and
		// a window of dots would match every binary dump. The hex windows
		// below find those.
		if w := secret[i : i+DumpTextWindow]; printable(w) {
			forms[fmt.Sprintf("hex dump (ASCII column) [%d:%d]", i, i+DumpTextWindow)] = bytes.Clone(w)
		}
	}
	for i := 0; i+DumpHexWindow <= len(secret); i++ {
		w := secret[i : i+DumpHexWindow]
		groups := make([]string, len(w))
		for j, b := range w {
			groups[j] = hex.EncodeToString([]byte{b})
		}
		forms[fmt.Sprintf("hex dump (hex bytes) [%d:%d]", i, i+DumpHexWindow)] = []byte(strings.Join(groups, " "))
	}
	return forms
}

// base64Core is the part of the encoding of (shift bytes, secret, more
// bytes) that depends on the secret's bytes only.
func base64Core(enc *base64.Encoding, secret []byte, shift int) []byte {
	full := enc.EncodeToString(append(make([]byte, shift), secret...))
	from := (8*shift + 5) / 6             // first character with no prefix bit
	to := (8 * (shift + len(secret))) / 6 // characters with no bit after the secret
	if to > len(full) {
		to = len(full)
	}
	if from >= to {
		return nil
	}
	return []byte(full[from:to])
}

// printable reports whether encoding/hex.Dump shows every byte of b as
// itself in its ASCII column.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 32 || c > 126 {
			return false
		}
	}
	return true
}

// formKind is a form's name without its window or offset.
func formKind(name string) string {
	if i := strings.Index(name, " ["); i >= 0 {
		return name[:i]
	}
	return name
}

// impliedKinds maps a form kind to the kind whose match implies it.
var impliedKinds = map[string]string{
	"hex dump (ASCII column)":         "raw",
	"base64 (unpadded)":               "base64",
	"base64 inside a larger value":    "base64 (unpadded)",
	"base64url (unpadded)":            "base64url",
	"base64url inside a larger value": "base64url (unpadded)",
}

// FindLeaks searches haystack for every form (LeakForms) of every secret,
// given by a description ("client secret of ApiClient ns/x"), and returns
// one finding per secret found, naming the secret and the forms, e.g.
// "client secret of ApiClient ns/x as base64, hex". A finding never contains
// the secret or any part of it. Secrets shorter than 8 bytes are searched
// only raw and in whole encodings.
func FindLeaks(haystack []byte, secrets map[string][]byte) []string {
	names := make([]string, 0, len(secrets))
	for name := range secrets {
		names = append(names, name)
	}
	sort.Strings(names)
	var findings []string
	for _, name := range names {
		secret := secrets[name]
		if len(secret) == 0 {
			continue
		}
		kinds := map[string]bool{}
		for form, needle := range LeakForms(secret) {
			if len(needle) > 0 && bytes.Contains(haystack, needle) {
				kinds[formKind(form)] = true
			}
		}
		if len(kinds) == 0 {
			continue
		}
		// Name the most complete form only: a raw copy also shows in every
		// window, a padded encoding also unpadded and as a core.
		found := maps.Clone(kinds)
		for kind, impliedBy := range impliedKinds {
			if found[impliedBy] {
				delete(kinds, kind)
			}
		}
		list := make([]string, 0, len(kinds))
		for k := range kinds {
			list = append(list, k)
		}
		sort.Strings(list)
		findings = append(findings, fmt.Sprintf("%s as %s", name, strings.Join(list, ", ")))
	}
	return findings
}

// SweepLeaks runs FindLeaks over every place (logs, Events, status,
// metrics, a binary's stderr...) and appends " in <place>" to each finding.
func SweepLeaks(places map[string][]byte, secrets map[string][]byte) []string {
	names := make([]string, 0, len(places))
	for name := range places {
		names = append(names, name)
	}
	sort.Strings(names)
	var findings []string
	for _, place := range names {
		for _, f := range FindLeaks(places[place], secrets) {
			findings = append(findings, f+" in "+place)
		}
	}
	return findings
}
