package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/warden-run/warden/config"
	"github.com/warden-run/warden/controlplane"
	"github.com/warden-run/warden/credential"
	"github.com/warden-run/warden/identity"
)

func agentCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Register agents and manage their identities",
		Long: `Operator commands (register, list, show, disable, enable, delete, join-token)
call the running control plane with the operator credential in the data
directory (or --creds). Agent-side commands (credentials, renew, jwt) run
where the agent runs: its private key is generated there and never sent.`,
	}
	var creds string
	cmd.PersistentFlags().StringVar(&creds, "creds", "", "credential directory (operator commands: default <data dir>/admin; agent commands: the agent's)")
	cmd.AddCommand(
		agentRegisterCmd(a, &creds),
		agentListCmd(a, &creds),
		agentShowCmd(a, &creds),
		agentStatusCmd(a, &creds, "disable", "Disable an agent: its SVIDs fail verification from the next request on", (*controlplane.Client).DisableAgent),
		agentStatusCmd(a, &creds, "enable", "Re-enable a disabled agent", (*controlplane.Client).EnableAgent),
		agentStatusCmd(a, &creds, "delete", "Delete an agent for good (its SPIFFE ID is never reused)", (*controlplane.Client).DeleteAgent),
		agentJoinTokenCmd(a, &creds),
		agentCredentialsCmd(a),
		agentRenewCmd(a, &creds),
		agentJWTCmd(a, &creds),
	)
	return cmd
}

func agentRegisterCmd(a *app, creds *string) *cobra.Command {
	var req controlplane.AgentRequest
	var labels []string
	var out string
	cmd := &cobra.Command{
		Use:   "register NAME --owner EMAIL --model MODEL",
		Short: "Register an agent and print its one-time join token",
		Long: `register gives the agent the SPIFFE ID spiffe://<trust-domain>/agent/NAME and
prints a one-time join token, valid briefly, on a line of its own:

  join token: <TOKEN>

Hand the token to whoever runs the agent; ` + "`warden agent credentials`" + ` redeems it.
Owner, model, code digest and tier become the agent's attestation claims,
marked "asserted": Warden records them but has not verified them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			req.Name = args[0]
			var err error
			if req.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				resp, err := c.RegisterAgent(ctx, req)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if out == "json" {
					return printJSON(w, resp)
				}
				fmt.Fprintf(w, "registered %s\n", resp.Agent.SPIFFEID)
				fmt.Fprintf(w, "join token: %s\n", resp.JoinToken)
				fmt.Fprintf(w, "The join token can be used once, until %s:\n  warden agent credentials %s --join-token <TOKEN> --out <DIR>\n",
					resp.JoinTokenExpiresAt.Local().Format(time.RFC3339), resp.Agent.Name)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Owner, "owner", "", "email of who deployed the agent (required)")
	f.StringVar(&req.Model, "model", "", "model behind the agent, e.g. claude-sonnet (required)")
	f.StringVar(&req.CodeDigest, "code-digest", "", "digest of the agent's code, sha256:<hex>")
	f.StringVar(&req.Tier, "tier", "", "tier the agent is held to: foundation, advanced or optimized (default: the deployment's; only stricter)")
	f.StringArrayVar(&labels, "label", nil, "label k=v (repeatable)")
	outputFlag(cmd, &out)
	return cmd
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want key=value", kv)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--label %s given twice", k)
		}
		m[k] = v
	}
	return m, nil
}

func agentListCmd(a *app, creds *string) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List agents (deleted ones included)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				agents, err := c.ListAgents(ctx)
				if err != nil {
					return err
				}
				if out == "json" {
					return printJSON(cmd.OutOrStdout(), agents)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATUS\tENROLLED\tTIER\tOWNER\tMODEL\tSPIFFE ID")
				for _, ag := range agents {
					fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\n", ag.Name, ag.Status, ag.Enrolled, ag.Tier, ag.Owner, ag.Model, ag.SPIFFEID)
				}
				return tw.Flush()
			})
		},
	}
	outputFlag(cmd, &out)
	return cmd
}

func agentShowCmd(a *app, creds *string) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an agent and its attestation claims",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				ag, err := c.GetAgent(ctx, args[0])
				if err != nil {
					return err
				}
				if out == "json" {
					return printJSON(cmd.OutOrStdout(), ag)
				}
				printAgent(cmd.OutOrStdout(), ag)
				return nil
			})
		},
	}
	outputFlag(cmd, &out)
	return cmd
}

func printAgent(w io.Writer, ag *controlplane.Agent) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("SPIFFE ID", ag.SPIFFEID)
	row("status", ag.Status)
	row("enrolled", fmt.Sprint(ag.Enrolled))
	if ag.KeyThumbprint != "" {
		row("key thumbprint", ag.KeyThumbprint)
	}
	att := ag.Attestation
	row("owner", att.Owner.Value+" ("+string(att.Owner.Source)+")")
	row("model", att.Model.Value+" ("+string(att.Model.Source)+")")
	if att.CodeDigest != nil {
		row("code digest", att.CodeDigest.Value+" ("+string(att.CodeDigest.Source)+")")
	}
	row("tier", att.Tier.Value+" ("+string(att.Tier.Source)+")")
	row("registered by", att.RegisteredBy.Value+" ("+string(att.RegisteredBy.Source)+")")
	keys := make([]string, 0, len(ag.Labels))
	for k := range ag.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row("label "+k, ag.Labels[k])
	}
	row("created", ag.CreatedAt.Local().Format(time.RFC3339))
	row("updated", ag.UpdatedAt.Local().Format(time.RFC3339))
	tw.Flush()
}

func agentStatusCmd(a *app, creds *string, verb, short string, call func(*controlplane.Client, context.Context, string) (*controlplane.Agent, error)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				ag, err := call(c, ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s is now %s\n", ag.SPIFFEID, ag.Status)
				return nil
			})
		},
	}
}

func agentJoinTokenCmd(a *app, creds *string) *cobra.Command {
	return &cobra.Command{
		Use:   "join-token NAME",
		Short: "Issue a new one-time join token (enrolling with it replaces the agent's key)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAdmin(cmd, *creds, func(ctx context.Context, c *controlplane.Client) error {
				t, err := c.NewJoinToken(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "join token: %s\n", t.JoinToken)
				fmt.Fprintf(cmd.OutOrStdout(), "valid once, until %s, for %s\n", t.ExpiresAt.Local().Format(time.RFC3339), t.SPIFFEID)
				return nil
			})
		},
	}
}

func agentCredentialsCmd(a *app) *cobra.Command {
	var token, out, bundle string
	cmd := &cobra.Command{
		Use:   "credentials NAME --join-token TOKEN --out DIR",
		Short: "Agent side: generate a key here and obtain the first X.509-SVID",
		Long: `credentials runs where the agent runs. It generates the agent's private key
locally, sends only a certificate signing request with the one-time join
token, and writes into DIR:

  svid.key         the private key (0600; never leaves this machine)
  svid.pem         the X.509-SVID and its intermediate
  bundle.pem       the trust domain's root certificate
  credential.json  the SPIFFE ID and the control plane's address

The control plane is verified against --bundle (a PEM file or a SPIFFE
bundle JSON document), or against the local data directory's root when this
runs on the control plane's host.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" || out == "" {
				return errors.New("--join-token and --out are required")
			}
			if _, err := os.Stat(out + "/" + credential.KeyFile); err == nil {
				return fmt.Errorf("%s already holds a key; use an empty directory (renew with `warden agent renew --creds %s`)", out, out)
			}
			roots, err := loadRoots(a, bundle)
			if err != nil {
				return err
			}
			td, err := trustDomainOf(roots[0])
			if err != nil {
				return err
			}
			want, err := identity.NewID(td, identity.RoleAgent, args[0])
			if err != nil {
				return err
			}
			url, err := a.controlPlaneURL(nil)
			if err != nil {
				return err
			}
			ctx, cancel := requestContext(cmd)
			defer cancel()
			cred, err := controlplane.Enroll(ctx, url, roots, want, token)
			if err != nil {
				return err
			}
			if err := cred.Save(out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s enrolled; X.509-SVID expires %s\nwrote %s/{%s,%s,%s,%s}\n",
				cred.ID, cred.Chain[0].NotAfter.Local().Format(time.RFC3339), out,
				credential.KeyFile, credential.CertFile, credential.BundleFile, credential.MetaFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "join-token", "", "the one-time join token printed by `warden agent register`")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the credential into")
	cmd.Flags().StringVar(&bundle, "bundle", "", "trust bundle to verify the control plane (PEM or SPIFFE bundle JSON); default: the local data directory's root")
	return cmd
}

// loadRoots reads the trust anchors: --bundle, or the local CA root.
func loadRoots(a *app, bundlePath string) ([]*x509.Certificate, error) {
	if bundlePath == "" {
		bundlePath = a.dataDir().CertFile(config.KeyX509Root)
		if _, err := os.Stat(bundlePath); err != nil {
			return nil, fmt.Errorf("no trust bundle: pass --bundle FILE (the control plane's root certificate or SPIFFE bundle)")
		}
	}
	b, err := os.ReadFile(bundlePath)
	if err != nil {
		return nil, fmt.Errorf("reading trust bundle: %w", err)
	}
	if certs, err := identity.ParseCerts(b); err == nil {
		return certs, nil
	}
	// Not PEM: try a SPIFFE bundle document (the trust domain is read from
	// the roots themselves below, so parse with a placeholder).
	sb, err := spiffebundle.Parse(spiffeid.RequireTrustDomainFromString("bundle.invalid"), b)
	if err != nil {
		return nil, fmt.Errorf("%s is neither PEM certificates nor a SPIFFE bundle: %w", bundlePath, err)
	}
	if len(sb.X509Authorities()) == 0 {
		return nil, fmt.Errorf("%s has no X.509 authorities", bundlePath)
	}
	return sb.X509Authorities(), nil
}

// trustDomainOf reads the trust domain from a Warden root certificate's URI SAN.
func trustDomainOf(root *x509.Certificate) (spiffeid.TrustDomain, error) {
	if len(root.URIs) != 1 {
		return spiffeid.TrustDomain{}, errors.New("trust bundle root has no SPIFFE trust domain URI")
	}
	id, err := spiffeid.FromURI(root.URIs[0])
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("trust bundle root: %w", err)
	}
	return id.TrustDomain(), nil
}

func agentRenewCmd(a *app, creds *string) *cobra.Command {
	return &cobra.Command{
		Use:   "renew --creds DIR",
		Short: "Agent side: renew the X.509-SVID in DIR now, keeping the key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if *creds == "" {
				return errors.New("--creds DIR is required")
			}
			src, err := credential.NewSource(*creds, controlplane.Renewer(a.controlPlane), a.logger())
			if err != nil {
				return err
			}
			ctx, cancel := requestContext(cmd)
			defer cancel()
			if err := src.RenewNow(ctx); err != nil {
				return err
			}
			c := src.Current()
			fmt.Fprintf(cmd.OutOrStdout(), "renewed %s; expires %s\n", c.ID, c.Chain[0].NotAfter.Local().Format(time.RFC3339))
			return nil
		},
	}
}

func agentJWTCmd(a *app, creds *string) *cobra.Command {
	var audience []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "jwt --creds DIR --audience AUD",
		Short: "Agent side: mint a JWT-SVID with the agent's X.509-SVID and print it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if *creds == "" || len(audience) == 0 {
				return errors.New("--creds DIR and --audience are required")
			}
			cred, err := credential.Load(*creds)
			if err != nil {
				return err
			}
			if _, _, err := x509svid.Verify(cred.Chain, cred.Bundle()); err != nil {
				return fmt.Errorf("the X.509-SVID in %s is not valid (%v): renew it or enrol again", *creds, err)
			}
			url, err := a.controlPlaneURL(cred)
			if err != nil {
				return err
			}
			c, err := controlplane.NewClient(url, cred)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := requestContext(cmd)
			defer cancel()
			resp, err := c.JWTSVID(ctx, audience, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Token)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&audience, "audience", nil, "audience (repeatable)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "lifetime (default from warden.yaml, at most the tier's ceiling)")
	return cmd
}
