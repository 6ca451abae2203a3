package identity

import (
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Role is what kind of workload an identity is. It is the first segment of
// the SPIFFE ID path.
type Role string

// Roles.
const (
	RoleAgent        Role = "agent"
	RoleGateway      Role = "gateway"
	RoleAdmin        Role = "admin"
	RoleControlPlane Role = "controlplane"
)

func (r Role) valid() bool {
	switch r {
	case RoleAgent, RoleGateway, RoleAdmin, RoleControlPlane:
		return true
	}
	return false
}

// maxNameLen bounds a name so that IDs stay readable and indexable.
const maxNameLen = 128

// ValidateName checks that name can be the last segment of a SPIFFE ID path:
// letters, digits, '.', '-' and '_', not "." or "..", at most 128 bytes.
func ValidateName(name string) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("name is %d bytes long; at most %d", len(name), maxNameLen)
	}
	if err := spiffeid.ValidatePathSegment(name); err != nil {
		return fmt.Errorf("name %q is not a valid SPIFFE path segment: use letters, digits, '.', '-' and '_' (%w)", name, err)
	}
	return nil
}

// NewID returns the SPIFFE ID of the named workload of a role.
func NewID(td spiffeid.TrustDomain, role Role, name string) (spiffeid.ID, error) {
	if !role.valid() {
		return spiffeid.ID{}, fmt.Errorf("unknown role %q", role)
	}
	if err := ValidateName(name); err != nil {
		return spiffeid.ID{}, err
	}
	return spiffeid.FromSegments(td, string(role), name)
}

// RoleOf splits a Warden SPIFFE ID into its role and name. IDs that do not
// have the form /<role>/<name> are refused.
func RoleOf(id spiffeid.ID) (Role, string, error) {
	p := id.Path()
	if len(p) < 2 || p[0] != '/' {
		return "", "", fmt.Errorf("%s has no role in its path", id)
	}
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			role, name := Role(p[1:i]), p[i+1:]
			if !role.valid() {
				return "", "", fmt.Errorf("%s: unknown role %q", id, role)
			}
			if err := ValidateName(name); err != nil {
				return "", "", fmt.Errorf("%s: %w", id, err)
			}
			return role, name, nil
		}
	}
	return "", "", fmt.Errorf("%s has no role in its path: want /<role>/<name>", id)
}
