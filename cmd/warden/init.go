package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/warden-run/warden/internal/setup"
	"github.com/warden-run/warden/tier"
)

func initCmd(a *app) *cobra.Command {
	var td, tierName, admin string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a data directory: configuration, keys, CA, database, operator credential",
		Long: `init creates whatever is missing in the data directory: warden.yaml, one
private key per purpose (X.509 root and intermediate, JWT-SVID, grant,
checkpoint and memory signing; files 0600), the CA certificates, the SQLite
database and an operator credential (an X.509-SVID under /admin/).

It never overwrites or regenerates anything that exists: running it twice is
harmless. The root key (keys/x509-root.key) is needed only to sign a new
intermediate; it may be moved offline after init.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := setup.InitOptions{TrustDomain: td, AdminName: admin}
			if tierName != "" {
				t, err := tier.Parse(tierName)
				if err != nil {
					return err
				}
				o.Tier = t
			}
			rep, err := setup.Init(cmd.Context(), a.dataDir(), o)
			if err != nil {
				return err
			}
			printInitReport(cmd.OutOrStdout(), a.dir, rep)
			return nil
		},
	}
	cmd.Flags().StringVar(&td, "trust-domain", "", "SPIFFE trust domain of issued identities (default "+setup.DefaultTrustDomain+")")
	cmd.Flags().StringVar(&tierName, "tier", "", "tier preset: foundation (default), advanced or optimized")
	cmd.Flags().StringVar(&admin, "admin", setup.DefaultAdmin, "name of the operator identity /admin/<name>")
	return cmd
}

func printInitReport(w io.Writer, dir string, rep *setup.InitReport) {
	if len(rep.Created) == 0 {
		fmt.Fprintf(w, "%s is already initialised; nothing changed.\n", dir)
	} else {
		fmt.Fprintf(w, "Initialised %s (trust domain %s, tier %s):\n", dir, rep.Config.TrustDomain, rep.Config.Tier)
		for _, p := range rep.Created {
			fmt.Fprintf(w, "  created %s\n", p)
		}
	}
	for _, p := range rep.Kept {
		fmt.Fprintf(w, "  kept    %s\n", p)
	}
}
