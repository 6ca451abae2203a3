package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/controlplane"
	"github.com/warden-run/warden/credential"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/bridge"
)

func mcpCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Connect MCP clients to a Warden gateway",
	}
	var gatewayURL, creds, grantFile string
	connect := &cobra.Command{
		Use:   "connect --gateway URL --creds DIR [--grant FILE]",
		Short: "Bridge a stdio MCP client (Claude Desktop, Claude Code, Cursor) to a Warden gateway",
		Long: `connect is for MCP clients that only launch stdio servers. It relays the
client's JSON-RPC from stdin to the gateway over streamable HTTP and back,
presenting the agent's X.509-SVID (from --creds, renewed at half-life) over
mTLS and the task's grant (read from --grant afresh for every message, so a
new task's grant takes effect without restarting the client).

It holds no grant checking, policy or audit logic: every decision is the
gateway's. In the client's configuration, replace the server command with:

  "command": "warden",
  "args": ["mcp", "connect", "--gateway", "https://127.0.0.1:8444/mcp",
           "--creds", "/path/to/creds", "--grant", "/path/to/grant.jwt"]

Warden does not confine an agent that can run code on its own machine: the
gateway controls what reaches tools, not what the agent does locally.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if gatewayURL == "" || creds == "" {
				return errors.New("--gateway and --creds are required")
			}
			log := a.logger()
			src, err := credential.NewSource(creds, controlplane.Renewer(a.controlPlane), log)
			if err != nil {
				return err
			}
			go func() { _ = src.Run(cmd.Context()) }()
			pool := x509.NewCertPool()
			for _, r := range src.Current().Roots {
				pool.AddCert(r)
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
				MinVersion: tls.VersionTLS13, RootCAs: pool, GetClientCertificate: src.GetClientCertificate,
				VerifyConnection: verifyGateway(src.Current()),
			}}}
			grant := func() (string, error) {
				if grantFile == "" {
					return "", nil
				}
				b, err := os.ReadFile(grantFile)
				return strings.TrimSpace(string(b)), err
			}
			return bridge.Run(cmd.Context(), os.Stdin, os.Stdout, bridge.Options{URL: gatewayURL, Client: client, Grant: grant, Log: log})
		},
	}
	connect.Flags().StringVar(&gatewayURL, "gateway", "", "the gateway's MCP endpoint, e.g. https://127.0.0.1:8444/mcp")
	connect.Flags().StringVar(&creds, "creds", "", "the agent's credential directory (warden agent credentials)")
	connect.Flags().StringVar(&grantFile, "grant", "", "file holding the task's grant")
	cmd.AddCommand(connect)
	return cmd
}

// verifyGateway refuses a server that is not a Warden gateway of the
// credential's trust domain, after the standard chain and hostname checks.
func verifyGateway(c *credential.Credential) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the gateway presented no certificate")
		}
		return identity.CheckPeer(cs.PeerCertificates[0], c.ID.TrustDomain(), identity.RoleGateway)
	}
}
