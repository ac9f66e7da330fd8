// Package names makes the deterministic names of the objects Meridian creates from several parts
// (a namespace and a service, a service and a cluster, ...), so that two different sources never
// share a name.
package names

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// Limits of Kubernetes names.
const (
	// DNSLabel is the longest DNS-1123 label: Services, namespaces.
	DNSLabel = 63
	// DNSSubdomain is the longest DNS-1123 subdomain: most objects, ClusterWorks and EndpointSlices included.
	DNSSubdomain = 253
)

// hashLen is the number of hex digits of the hash suffix (40 bits).
const hashLen = 10

var hashSuffix = regexp.MustCompile(`-[0-9a-f]{10}$`)

// Join returns prefix followed by parts joined with '-', at most limit characters long. The name
// is the plain join, readable and stable, when that cannot be mistaken for the name of other
// parts: no part but the last contains '-' (joining "a-b","c" and "a","b-c" both give "a-b-c"),
// the result fits limit, and it does not end the way a hashed name does. Otherwise the joined
// name is cut to fit and ends with '-' and a hash of the parts; a plain name never ends like
// that, so plain and hashed names never meet, and two hashed names meet only on a hash collision.
// Every caller passes the same number of parts for the same prefix.
func Join(limit int, prefix string, parts ...string) string {
	plain := prefix + strings.Join(parts, "-")
	ambiguous := false
	for _, p := range parts[:max(len(parts)-1, 0)] {
		if strings.Contains(p, "-") {
			ambiguous = true
		}
	}
	if !ambiguous && len(plain) <= limit && !hashSuffix.MatchString(plain) {
		return plain
	}
	h := sha256.New()
	h.Write([]byte(prefix))
	for _, p := range parts {
		h.Write([]byte{0}) // a separator no part can hold
		h.Write([]byte(p))
	}
	suffix := "-" + hex.EncodeToString(h.Sum(nil))[:hashLen]
	head := plain
	if len(head) > limit-len(suffix) {
		head = head[:limit-len(suffix)]
	}
	// A DNS name's labels end in a letter or digit.
	head = strings.TrimRight(head, "-.")
	return head + suffix
}
