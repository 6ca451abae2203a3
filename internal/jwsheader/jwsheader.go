// Package jwsheader reads the protected header of a compact JWS before any
// signature check, so that each verifier in Warden can refuse a token of the
// wrong kind (typ), with a forbidden algorithm or an unknown key with a
// specific reason, instead of one generic "invalid token".
//
// It only reads; it never trusts what it reads. Signatures are checked by
// go-jose with an explicit list of allowed algorithms.
package jwsheader

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxTokenSize bounds the tokens Warden accepts. Its own tokens are a few
// hundred bytes to a few kilobytes; grants with large scopes stay well under.
const MaxTokenSize = 64 << 10

// Header is the part of a JWS protected header Warden checks.
type Header struct {
	Alg  string   `json:"alg"`
	Typ  string   `json:"typ"`
	Kid  string   `json:"kid"`
	Crit []string `json:"crit"`
}

// Parse decodes the protected header of a compact-serialised JWS.
func Parse(token string) (Header, error) {
	if len(token) > MaxTokenSize {
		return Header{}, fmt.Errorf("token is %d bytes; at most %d", len(token), MaxTokenSize)
	}
	if strings.Count(token, ".") != 2 {
		return Header{}, errors.New("token is not a compact JWS (want three base64url parts separated by dots)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(token[:strings.IndexByte(token, '.')])
	if err != nil {
		return Header{}, fmt.Errorf("token header is not base64url: %w", err)
	}
	var h Header
	if err := json.Unmarshal(raw, &h); err != nil {
		return Header{}, fmt.Errorf("token header is not a JSON object: %w", err)
	}
	if len(h.Crit) > 0 {
		return Header{}, fmt.Errorf("token header marks extensions critical (%s) that Warden does not implement", strings.Join(h.Crit, ", "))
	}
	return h, nil
}
