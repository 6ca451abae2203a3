package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/controlplane"
	"github.com/warden-run/warden/identity"
	"github.com/warden-run/warden/internal/setup"
)

func serveCmd(a *app) *cobra.Command {
	var listen, gwListen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the control plane and the MCP gateway (initialising the data directory on first run)",
		Long: `serve runs the control-plane HTTPS API and the MCP gateway (both on loopback
by default) until SIGINT or SIGTERM, then shuts down gracefully. If the data
directory has not been initialised, serve initialises it first with the
defaults of ` + "`warden init`" + `.

Every /v1 request needs an X.509-SVID of the role the endpoint accepts
(operators: /admin/...), from localhost too; /healthz, /readyz and the trust
bundle are public; /metrics needs an operator or gateway identity. /readyz
fails until persisted state is loaded.

Agents reach the gateway at https://<gateway.listen>/mcp with their X.509-SVID
(or a JWT-SVID and DPoP) and their task's grant in the Warden-Grant header;
the upstream MCP servers are those of gateway.upstreams in warden.yaml.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := a.logger()
			tuneGC(log, 2<<30) // GOGC and GOMEMLIMIT override
			if !a.initialised() {
				rep, err := setup.Init(ctx, a.dataDir(), setup.InitOptions{})
				if err != nil {
					return err
				}
				printInitReport(cmd.ErrOrStderr(), a.dir, rep)
			}
			d, err := setup.Open(ctx, a.dataDir(), log)
			if err != nil {
				return err
			}
			defer d.Close()
			resp, err := d.EnableResponse(ctx, setup.DefaultResponseOptions(string(d.Dir))) // detection rules, playbooks, approvals
			if err != nil {
				return err
			}
			if listen == "" {
				listen = d.Config.ControlPlane.Listen
			}
			bundle, err := identity.NewBundle(ctx, d.DB, d.Config.TrustDomainID(),
				[]*x509.Certificate{d.Identity.CA().Root()}, d.Identity.JWTKeys())
			if err != nil {
				return err
			}
			srv, err := controlplane.New(controlplane.Options{
				Identity: d.Identity, Bundle: bundle, Events: d.Events, Log: log,
				Grants: d.Grants, Policy: d.Policy, Authz: d.Authz, Memory: d.MemoryStore,
				Approvals:   resp.Approvals,
				ServerNames: d.Config.ControlPlane.ServerNames, ServerIPs: listenIPs(listen),
			})
			if err != nil {
				return err
			}
			if gwListen != "" {
				d.Config.Gateway.Listen = gwListen
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", listen, err)
			}
			gln, err := net.Listen("tcp", d.Config.Gateway.Listen)
			if err != nil {
				ln.Close()
				return fmt.Errorf("gateway: listening on %s: %w", d.Config.Gateway.Listen, err)
			}
			launch, err := d.SandboxLauncher()
			if err != nil {
				return err
			}
			sup, err := d.NewSupply(launch) // pinned tools, description scanner, verified servers
			if err != nil {
				return err
			}
			gw, err := d.NewGatewayWith(sup.Launcher, resp.Wrap(sup.Apply)) // resp: backlog, containment and approval stages
			if err != nil {
				return err
			}
			resp.UseGateway(gw)
			defer gw.Close()
			gw.Start(ctx)
			go sup.Watch(ctx, gw)
			log.Info("control plane listening", "url", "https://"+ln.Addr().String(), "trust_domain", d.Config.TrustDomain,
				"tier", d.Config.Tier.String(), "operator_credential", d.Dir.Admin())
			log.Info("gateway listening", "url", "https://"+gln.Addr().String()+"/mcp", "upstreams", len(d.Config.Gateway.Upstreams),
				"tools", len(gw.Tools()))
			// Either server failing stops both.
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			errc := make(chan error, 2)
			go func() { errc <- srv.Serve(sctx, ln) }()
			go func() { errc <- gw.Serve(sctx, gln) }()
			err = <-errc
			cancel()
			if err2 := <-errc; err == nil {
				err = err2
			}
			return err
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "control plane address (default: control_plane.listen in warden.yaml)")
	cmd.Flags().StringVar(&gwListen, "gateway-listen", "", "gateway address (default: gateway.listen in warden.yaml)")
	return cmd
}

// listenIPs returns the listen address's IP, if it is one, for the server
// certificate.
func listenIPs(listen string) []net.IP {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return []net.IP{ip}
	}
	return nil
}
