package controlplane

import (
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warden-run/warden/identity"
)

// serverCertTTL is the lifetime of the control plane's own certificate; it
// is re-issued in memory at half its life and never written to disk.
const serverCertTTL = 24 * time.Hour

// ControlPlaneID is the SPIFFE ID of the control plane's server certificate.
func ControlPlaneID(td spiffeid.TrustDomain) spiffeid.ID {
	host, _ := os.Hostname()
	id, _ := identity.NewID(td, identity.RoleControlPlane, identity.ServiceName(host))
	return id
}
