package identity

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable reason an identity operation was refused.
// Codes are part of Warden's API: events, HTTP errors and detection rules use
// them, so they are never renamed.
type Code string

// Reason codes.
const (
	CodeMalformed       Code = "svid_malformed"      // not parseable as an SVID
	CodeUntrusted       Code = "svid_untrusted"      // not signed by this trust domain's CA
	CodeExpired         Code = "svid_expired"        // past its NotAfter / exp
	CodeNotYetValid     Code = "svid_not_yet_valid"  // before its NotBefore / iat
	CodeSuperseded      Code = "svid_superseded"     // issued for a key the identity no longer holds
	CodeWrongRole       Code = "identity_wrong_role" // valid, but of a role this endpoint refuses
	CodeUnknown         Code = "identity_unknown"    // no such identity registered
	CodeDisabled        Code = "identity_disabled"   // registered, currently disabled
	CodeDeleted         Code = "identity_deleted"    // registered once, deleted
	CodeJWTType         Code = "jwt_wrong_type"      // typ is not the one this verifier accepts
	CodeJWTAlg          Code = "jwt_alg_not_allowed" // alg is none or not allowed
	CodeJWTSignature    Code = "jwt_bad_signature"   // signature does not verify
	CodeJWTAudience     Code = "jwt_wrong_audience"  // the expected audience is not in aud
	CodeJoinTokenBad    Code = "join_token_unknown"  // no such join token
	CodeJoinTokenUsed   Code = "join_token_used"     // already redeemed
	CodeJoinTokenExpiry Code = "join_token_expired"  // past its lifetime
	CodeCSRInvalid      Code = "csr_invalid"         // malformed, unsigned or with a weak key
	CodeCSRWrongID      Code = "csr_wrong_id"        // asks for another identity's SPIFFE ID
	CodeKeyChanged      Code = "renewal_key_changed" // renewal must keep the key
	CodeInvalidInput    Code = "invalid_input"       // a field failed validation
	CodeConflict        Code = "identity_exists"     // the name is taken
	CodeInternal        Code = "internal_error"      // Warden could not complete the check: fail closed
)

// Error is a refused identity operation: a stable code and a message that
// says what exactly was wrong.
type Error struct {
	Code Code
	Msg  string
	Err  error // underlying cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Msg, e.Err)
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func wrapErr(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

// CodeOf returns the code of an identity error, or CodeInternal for any other
// error: an error that cannot be classified is a failure to check, and denies.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
